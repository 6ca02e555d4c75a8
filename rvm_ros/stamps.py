"""ROS time stamps as integer nanoseconds: the one conversion the package uses.

A ``builtin_interfaces/Time`` holds ``sec`` (int32) and ``nanosec`` (uint32); the package
keys frames, outputs and ground truth by ``sec * 1e9 + nanosec`` as a Python ``int``
(exact, no float rounding).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NS_PER_SEC", "HasStamp", "StampLike", "header_ns", "split_ns", "stamp_ns"]

NS_PER_SEC = 1_000_000_000


class StampLike(Protocol):
    """Anything with ``sec`` and ``nanosec`` (a ROS ``Time`` message, a CDR stamp)."""

    @property
    def sec(self) -> int: ...

    @property
    def nanosec(self) -> int: ...


class HasStamp(Protocol):
    """A ``std_msgs/Header`` (or anything with a ``stamp``)."""

    @property
    def stamp(self) -> StampLike: ...


def stamp_ns(stamp: StampLike) -> int:
    """Integer nanoseconds of a ``Time`` (``sec * 1e9 + nanosec``)."""
    return int(stamp.sec) * NS_PER_SEC + int(stamp.nanosec)


def header_ns(header: HasStamp) -> int:
    """Integer nanoseconds of a ``Header``'s stamp."""
    return stamp_ns(header.stamp)


def split_ns(ns: int) -> tuple[int, int]:
    """``(sec, nanosec)`` of integer nanoseconds (``nanosec`` in ``[0, 1e9)``)."""
    sec, nanosec = divmod(int(ns), NS_PER_SEC)
    return sec, nanosec
