"""Planner side: TrackedPoints messages to numpy arrays.

Works on rclpy messages (``rvm_ros.msg.TrackedPoints``) and on rosbags messages alike (any
object with the fields of ``msg/TrackedPoints.msg``)::

    tracks = tracks_to_numpy(msg)
    tracks.xs[tracks.visible], tracks.ys[tracks.visible]   # image pixels of visible points
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rvm_ros.stamps import stamp_ns as stamp_to_ns

__all__ = ["TrackedPointsLike", "Tracks", "tracks_to_numpy"]


class _TrackedPointLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def x(self) -> float: ...
    @property
    def y(self) -> float: ...
    @property
    def visible(self) -> bool: ...
    @property
    def confidence(self) -> float: ...


class _StampLike(Protocol):
    @property
    def sec(self) -> int: ...
    @property
    def nanosec(self) -> int: ...


class _HeaderLike(Protocol):
    @property
    def stamp(self) -> _StampLike: ...


class TrackedPointsLike(Protocol):
    """The fields of ``msg/TrackedPoints.msg`` that are read (rclpy and rosbags alike)."""

    @property
    def header(self) -> _HeaderLike: ...
    @property
    def camera(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def points(self) -> Iterable[_TrackedPointLike]: ...


@dataclass(frozen=True, eq=False)
class Tracks:
    """One TrackedPoints message as arrays (image pixels).

    Holds arrays, so instances compare by identity (``eq=False``).

    Attributes:
        camera: Camera name.
        stamp_ns: Header stamp in nanoseconds.
        seq: Frame sequence number.
        ids: ``[N]`` int32.
        xs: ``[N]`` float32.
        ys: ``[N]`` float32.
        visible: ``[N]`` bool.
        confidence: ``[N]`` float32.
    """

    camera: str
    stamp_ns: int
    seq: int
    ids: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray


def tracks_to_numpy(msg: TrackedPointsLike) -> Tracks:
    """Read a TrackedPoints message (rclpy or rosbags) into arrays."""
    points = list(msg.points)
    stamp = msg.header.stamp
    return Tracks(
        camera=str(msg.camera),
        stamp_ns=stamp_to_ns(stamp),
        seq=int(msg.seq),
        ids=np.array([p.id for p in points], dtype=np.int32),
        xs=np.array([p.x for p in points], dtype=np.float32),
        ys=np.array([p.y for p in points], dtype=np.float32),
        visible=np.array([bool(p.visible) for p in points], dtype=bool),
        confidence=np.array([p.confidence for p in points], dtype=np.float32),
    )
