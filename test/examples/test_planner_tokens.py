"""The planner-tokens example: SceneTokens -> planner input with track tokens, then over DDS."""

from __future__ import annotations

import os
import random
import time
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.imaging.preprocess import fit_geometry
from rvm_ros.pipeline.geometry import CameraIntrinsics, pose_matrix
from rvm_ros.pipeline.scene import SceneAssembler
from rvm_ros.pipeline.types import FrameResult
from rvm_ros.wire.scene_tokens import (
    SceneTokensClasses,
    scene_tokens_message,
    scene_tokens_to_numpy,
)
from rvm_ros.wire.tracks_decode import Tracks

MS = 1_000_000
CAMS = ("front", "left")
# 64x48 images letterboxed into 64x64: y + 8, a 4x4 grid of 16 px cells.
GEOMETRY = fit_geometry(48, 64, 64, 64, "letterbox")


def result(cam: str, stamp_ns: int, seed: int) -> FrameResult:
    rng = np.random.default_rng(seed)
    return FrameResult(
        camera=cam,
        header=None,
        stamp_ns=stamp_ns,
        seq=0,
        features=rng.standard_normal((4, 4, 6)).astype(np.float32),
        cls=rng.standard_normal(6).astype(np.float32),
        grid_height=4,
        grid_width=4,
        frames_since_reset=0,
        state_reset=False,
        reset_reason="",
        reset_count=0,
        geometry=GEOMETRY,
        cell_size=16,
        pool=1,
        model_id="tiny-random0",
        step_ms=1.0,
    )


def scene(classes: SceneTokensClasses, stamps: dict[str, int]) -> tuple[Any, dict]:
    asm = SceneAssembler(CAMS, 64, 64, 16, "partial", 10.0, "letterbox")
    for cam in CAMS:
        asm.set_intrinsics(cam, CameraIntrinsics(np.diag([40.0, 40.0, 1.0]), 64, 48))
        asm.set_extrinsics(cam, pose_matrix([0, 0, 1], [0, 0, 0, 1]))
    outs = {c: result(c, t, i) for i, (c, t) in enumerate(stamps.items())}
    step = asm.assemble(list(outs.values()))
    return scene_tokens_message(classes, step, "base_link"), outs


def trk(
    cam: str, stamp_ns: int, ids: list[int], xy: list[tuple[float, float]], vis: list
) -> Tracks:
    return Tracks(
        camera=cam,
        stamp_ns=stamp_ns,
        seq=0,
        ids=np.array(ids, np.int32),
        xs=np.array([p[0] for p in xy], np.float32),
        ys=np.array([p[1] for p in xy], np.float32),
        visible=np.array(vis, bool),
        confidence=np.ones(len(ids), np.float32),
    )


@pytest.fixture(scope="module")
def classes() -> SceneTokensClasses:
    t = bags.typestore().types
    return SceneTokensClasses(
        t[bags.SCENE_TOKENS_TYPE],
        t["rvm_ros/msg/CameraGeometry"],
        t["std_msgs/msg/Header"],
        t["builtin_interfaces/msg/Time"],
        rclpy=False,
    )


def test_track_tokens_are_the_cells_under_visible_points(
    planner_tokens: ModuleType, classes: SceneTokensClasses
) -> None:
    msg, outs = scene(classes, {"front": 100, "left": 100})
    arrays = scene_tokens_to_numpy(msg)
    tracks = {
        # ids out of order; id 7 occluded, id 9 outside the image: neither becomes a token.
        # (40, 8) -> network (40, 16) -> cell row 1, col 2; (1, 1) -> (1, 9) -> row 0, col 0.
        "front": trk("front", 100, [5, 2, 7, 9], [(40, 8), (1, 1), (3, 3), (80, 1)], [1, 1, 0, 1])
    }
    tokens, mask, ids = planner_tokens.track_tokens(arrays, tracks, 3)
    np.testing.assert_array_equal(ids, [[2, 5, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(tokens[0, 0], outs["front"].features[0, 0])
    np.testing.assert_array_equal(tokens[0, 1], outs["front"].features[1, 2])
    assert (tokens[0, 2] == 0).all() and (tokens[1] == 0).all()
    np.testing.assert_array_equal(mask, [[True, True, False], [False] * 3])
    _, _, one = planner_tokens.track_tokens(arrays, tracks, 1)
    np.testing.assert_array_equal(one[0], [2])  # lowest ids kept


def test_steps_wait_for_their_tracks_but_never_queue(
    planner_tokens: ModuleType, classes: SceneTokensClasses
) -> None:
    asm = planner_tokens.StepAssembler(max_tracks=2)
    first, outs = scene(classes, {"front": 10 * MS, "left": 11 * MS})
    assert asm.add_scene(scene_tokens_to_numpy(first)) == []  # tracks not there yet
    assert asm.add_tracks(trk("front", 10 * MS, [1], [(5, 5)], [1])) == []
    (step,) = asm.add_tracks(trk("left", 11 * MS, [4], [(60, 40)], [1]))
    assert step.stamp_ns == 10 * MS and step.cameras == CAMS
    assert step.inputs["img_feats"].shape == (2, 6, 4, 4)
    np.testing.assert_array_equal(step.track_ids, [[1, -1], [4, -1]])
    np.testing.assert_array_equal(step.track_tokens[1, 0].numpy(), outs["left"].features[3, 3])
    # A step whose tracks never come is emitted when the next one arrives.
    second, _ = scene(classes, {"front": 20 * MS, "left": 21 * MS})
    third, _ = scene(classes, {"front": 30 * MS, "left": 31 * MS})
    assert asm.add_scene(scene_tokens_to_numpy(second)) == []
    (late,) = asm.add_scene(scene_tokens_to_numpy(third))
    assert late.stamp_ns == 20 * MS and not late.track_mask.any()
    no_tracks = planner_tokens.StepAssembler(max_tracks=0)
    assert len(no_tracks.add_scene(scene_tokens_to_numpy(third))) == 1
    with pytest.raises(ValueError, match="max_tracks must be >= 0"):
        planner_tokens.StepAssembler(-1)


@pytest.mark.ros
def test_node_assembles_over_dds(planner_tokens: ModuleType) -> None:
    rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run under scripts/ros-env")
    msg_mod = pytest.importorskip("rvm_ros.msg")
    from builtin_interfaces.msg import Time
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Header

    rclpy_classes = SceneTokensClasses(
        msg_mod.SceneTokens, msg_mod.CameraGeometry, Header, Time, rclpy=True
    )
    prefix = f"/planner_test_{os.getpid()}_{random.randrange(1 << 30)}"
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.randrange(100, 200))
    steps: list[Any] = []
    planner = planner_tokens.PlannerTokensNode(
        prefix, CAMS, max_tracks=2, context=context, reliable=True, on_step=steps.append
    )
    source = Node("fake_rvm", context=context)
    qos = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )
    scene_pub = source.create_publisher(msg_mod.SceneTokens, f"{prefix}/scene_tokens", qos)
    track_pubs = {
        c: source.create_publisher(msg_mod.TrackedPoints, f"{prefix}/{c}/tracks", qos) for c in CAMS
    }
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(planner.node)
    executor.add_node(source)
    stamp = 1_700_000_000 * 1_000_000_000 + 123 * MS
    msg, outs = scene(rclpy_classes, {"front": stamp, "left": stamp + 2 * MS})
    try:
        deadline = time.monotonic() + 30.0
        pubs = [scene_pub, *track_pubs.values()]
        while any(p.get_subscription_count() == 0 for p in pubs):
            assert time.monotonic() < deadline, "planner subscriptions not discovered in 30 s"
            executor.spin_once(timeout_sec=0.05)
        scene_pub.publish(msg)
        for cam, t, (x, y) in (
            ("front", stamp, (20.0, 42.0)),
            ("left", stamp + 2 * MS, (60.0, 40.0)),
        ):
            tm = msg_mod.TrackedPoints(camera=cam, seq=0)
            tm.header.stamp.sec, tm.header.stamp.nanosec = divmod(t, 1_000_000_000)
            tm.points = [msg_mod.TrackedPoint(id=3, x=x, y=y, visible=True, confidence=1.0)]
            track_pubs[cam].publish(tm)
        while not steps:
            assert time.monotonic() < deadline, "no planner step assembled in 30 s"
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        planner.destroy()
        source.destroy_node()
        rclpy.shutdown(context=context)
    (step,) = steps
    assert step.stamp_ns == stamp and step.cameras == CAMS
    x = step.inputs
    np.testing.assert_array_equal(x["cls"][0].numpy(), outs["front"].cls)
    np.testing.assert_array_equal(x["img_feats"][1].permute(1, 2, 0).numpy(), outs["left"].features)
    assert x["projection_mat"].shape == (2, 4, 4) and x["valid"].tolist() == [True, True]
    np.testing.assert_array_equal(step.track_ids, [[3, -1], [3, -1]])
    # (20, 42) -> network (20, 50) -> row 3, col 1; (60, 40) -> (60, 48) -> row 3, col 3.
    np.testing.assert_array_equal(step.track_tokens[0, 0].numpy(), outs["front"].features[3, 1])
    np.testing.assert_array_equal(step.track_tokens[1, 0].numpy(), outs["left"].features[3, 3])
    assert planner.rejected == 0
