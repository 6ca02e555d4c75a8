"""Planner-side reading of TrackedPoints messages (rvm_ros.wire.tracks_decode)."""

from __future__ import annotations

import numpy as np
import pytest

from rvm_ros.wire.tracks_decode import tracks_to_numpy


@pytest.mark.ros
def test_tracks_to_numpy_from_rclpy_message() -> None:
    msg_mod = pytest.importorskip("rvm_ros.msg", reason="rvm_ros.msg: run under scripts/ros-env")
    msg = msg_mod.TrackedPoints(camera="left", seq=9)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 3, 4
    msg.points = [
        msg_mod.TrackedPoint(id=5, x=1.5, y=2.5, visible=True, confidence=0.75),
        msg_mod.TrackedPoint(id=8, x=-1.0, y=40.0, visible=False, confidence=0.0),
    ]
    t = tracks_to_numpy(msg)
    assert (t.camera, t.stamp_ns, t.seq) == ("left", 3_000_000_004, 9)
    np.testing.assert_array_equal(t.ids, [5, 8])
    np.testing.assert_array_equal(t.xs, [1.5, -1.0])
    np.testing.assert_array_equal(t.ys, [2.5, 40.0])
    np.testing.assert_array_equal(t.visible, [True, False])
    np.testing.assert_array_equal(t.confidence, [0.75, 0.0])
