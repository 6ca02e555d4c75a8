"""rvm_ros.stamps: the one ROS time <-> integer nanoseconds conversion."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rvm_ros.stamps import NS_PER_SEC, header_ns, split_ns, stamp_ns


@dataclass
class _Time:
    sec: int
    nanosec: int


@dataclass
class _Header:
    stamp: _Time


@pytest.mark.parametrize(
    ("sec", "nanosec"), [(0, 0), (1, 999_999_999), (1_700_000_000, 123_456_789), (-1, 500)]
)
def test_round_trip_is_exact(sec: int, nanosec: int) -> None:
    ns = stamp_ns(_Time(sec, nanosec))
    assert ns == sec * NS_PER_SEC + nanosec
    assert split_ns(ns) == (sec, nanosec)
    assert header_ns(_Header(_Time(sec, nanosec))) == ns


def test_large_stamps_do_not_round_like_floats() -> None:
    # 2**53 ns is ~104 days: beyond it, float seconds lose nanoseconds.
    ns = stamp_ns(_Time(1_700_000_000, 1))
    assert ns % 10 == 1
    assert split_ns(ns + 1) == (1_700_000_000, 2)
