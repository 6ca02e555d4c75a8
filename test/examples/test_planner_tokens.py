"""The planner-tokens example: stamp matching and token assembly, then the node over DDS."""

from __future__ import annotations

import os
import random
import time
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from rvm_ros.imaging.preprocess import fit_geometry
from rvm_ros.wire.decode import FeatureMapArrays, Tracks, feature_map_payload

RNG = np.random.default_rng(11)
GEOMETRY = fit_geometry(64, 64, 64, 64, "stretch")  # 4x4 grid of 16 px cells, 1 px = 1 px
MS = 1_000_000


def fmap(camera: str, stamp_ns: int, h: int = 4, w: int = 4, c: int = 6) -> FeatureMapArrays:
    return FeatureMapArrays(
        features=RNG.standard_normal((h, w, c)).astype(np.float32),
        cls=RNG.standard_normal(c).astype(np.float32),
        geometry=GEOMETRY,
        cell_size=16,
        pool=1,
        camera=camera,
        stamp_ns=stamp_ns,
        model_id="tiny-random0",
        frames_since_reset=0,
        state_reset=False,
    )


def trk(
    camera: str, stamp_ns: int, ids: list[int], xy: list[tuple[float, float]], vis: list[Any]
) -> Tracks:
    return Tracks(
        camera=camera,
        stamp_ns=stamp_ns,
        seq=0,
        ids=np.array(ids, np.int32),
        xs=np.array([p[0] for p in xy], np.float32),
        ys=np.array([p[1] for p in xy], np.float32),
        visible=np.array(vis, bool),
        confidence=np.ones(len(ids), np.float32),
    )


def test_tokens_of_matched_cameras(planner_tokens: ModuleType) -> None:
    front = [fmap("front", t * MS) for t in (0, 33, 66)]
    left = [fmap("left", t * MS) for t in (2, 35, 71)]
    maps = {"front": front, "left": left}
    step = planner_tokens.assemble_tokens(maps, 4 * MS, cameras=["front", "left"])
    # Newest front (66 ms) has left at 71 ms (5 ms off): too far; 33 ms matches 35 ms.
    assert step.stamp_ns == 33 * MS and step.stamps_ns == (33 * MS, 35 * MS)
    assert step.cameras == ("front", "left")
    assert step.tokens.shape == (2, 17, 6) and step.tokens.dtype == np.float32
    for i, m in enumerate((front[1], left[1])):
        np.testing.assert_array_equal(step.tokens[i, 0], m.cls)
        np.testing.assert_array_equal(step.tokens[i, 1 + 2 * 4 + 3], m.features[2, 3])
    assert step.mask.all() and step.track_ids.shape == (2, 0)
    wider = planner_tokens.assemble_tokens(maps, 5 * MS, cameras=["front", "left"])
    assert wider.stamp_ns == 66 * MS
    assert planner_tokens.assemble_tokens(maps, 1 * MS) is None
    assert planner_tokens.assemble_tokens({"front": front, "left": []}, 10 * MS) is None
    # Default camera order: sorted names.
    assert planner_tokens.assemble_tokens(maps, 5 * MS).cameras == ("front", "left")


def test_track_tokens(planner_tokens: ModuleType) -> None:
    a, b = fmap("a", 100), fmap("b", 100)
    tracks = {
        # ids out of order; id 7 occluded, id 9 outside the image: neither becomes a token.
        "a": [
            trk("a", 100, [5, 2, 7, 9], [(40.0, 8.0), (1.0, 1.0), (3, 3), (80, 1)], [1, 1, 0, 1])
        ],
        "b": [trk("b", 100, [], [], [])],
    }
    step = planner_tokens.assemble_tokens(
        {"a": [a], "b": [b]}, 0, tracks=tracks, max_tracks=3, cameras=["a", "b"]
    )
    assert step.tokens.shape == (2, 17 + 3, 6)
    np.testing.assert_array_equal(step.track_ids, [[2, 5, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(step.tokens[0, 17], a.features[0, 0])  # id 2 at (1, 1)
    np.testing.assert_array_equal(step.tokens[0, 18], a.features[0, 2])  # id 5 at (40, 8)
    assert (step.tokens[0, 19] == 0).all() and (step.tokens[1, 17:] == 0).all()
    np.testing.assert_array_equal(step.mask[:, 17:], [[True, True, False], [False] * 3])
    one = planner_tokens.assemble_tokens(
        {"a": [a], "b": [b]}, 0, tracks=tracks, max_tracks=1, cameras=["a", "b"]
    )
    np.testing.assert_array_equal(one.track_ids[0], [2])  # lowest ids kept
    # Tracks required when given: a camera without them makes the step incomplete.
    assert (
        planner_tokens.assemble_tokens(
            {"a": [a], "b": [b]}, 0, tracks={"a": tracks["a"]}, max_tracks=1
        )
        is None
    )


def test_errors(planner_tokens: ModuleType) -> None:
    maps = {"a": [fmap("a", 0)], "b": [fmap("b", 0, h=2)]}
    with pytest.raises(ValueError, match=r"camera 'b' has a feature grid \(2, 4, 6\)"):
        planner_tokens.assemble_tokens(maps, 0, cameras=["a", "b"])
    with pytest.raises(ValueError, match="must be >= 0, got -1 and 0"):
        planner_tokens.assemble_tokens(maps, -1)
    with pytest.raises(ValueError, match="at least one camera"):
        planner_tokens.TokenAssembler([], 0)


def test_assembler_emits_each_step_once(planner_tokens: ModuleType) -> None:
    asm = planner_tokens.TokenAssembler(["a", "b"], tolerance_ns=2 * MS, history=4)
    assert asm.add_features(fmap("a", 10 * MS)) is None
    step = asm.add_features(fmap("b", 11 * MS))
    assert step is not None and step.stamp_ns == 10 * MS
    assert asm.add_features(fmap("other", 11 * MS)) is None  # unknown camera ignored
    assert asm.poll() is None  # already emitted
    assert asm.add_features(fmap("b", 20 * MS)) is None
    assert asm.add_features(fmap("a", 21 * MS)).stamp_ns == 21 * MS


# --- the node over real DDS -----------------------------------------------------------------


def feature_map_msg(msg_mod: Any, arrays: FeatureMapArrays) -> Any:
    cls_b, feat_b = feature_map_payload(arrays.features, arrays.cls, np.float32)
    h, w, c = arrays.features.shape
    g = arrays.geometry
    msg = msg_mod.FeatureMap(
        camera=arrays.camera,
        model_id=arrays.model_id,
        grid_height=h,
        grid_width=w,
        channels=c,
        dtype=msg_mod.FeatureMap.DTYPE_FLOAT32,
        cls_token=cls_b,
        features=feat_b,
        image_height=g.image_height,
        image_width=g.image_width,
        model_height=g.model_height,
        model_width=g.model_width,
        resize_mode=g.mode,
        scale_x=g.scale_x,
        scale_y=g.scale_y,
        offset_x=g.offset_x,
        offset_y=g.offset_y,
        cell_size=arrays.cell_size,
        pool=arrays.pool,
    )
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(arrays.stamp_ns, 1_000_000_000)
    return msg


def tracks_msg(msg_mod: Any, t: Tracks) -> Any:
    msg = msg_mod.TrackedPoints(camera=t.camera, seq=t.seq)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t.stamp_ns, 1_000_000_000)
    msg.points = [
        msg_mod.TrackedPoint(id=int(i), x=float(x), y=float(y), visible=bool(v), confidence=1.0)
        for i, x, y, v in zip(t.ids, t.xs, t.ys, t.visible, strict=True)
    ]
    return msg


@pytest.mark.ros
def test_node_assembles_over_dds(planner_tokens: ModuleType) -> None:
    rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run under scripts/ros-env")
    msg_mod = pytest.importorskip("rvm_ros.msg")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    prefix = f"/planner_test_{os.getpid()}_{random.randrange(1 << 30)}"
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.randrange(100, 200))
    steps: list[Any] = []
    planner = planner_tokens.PlannerTokensNode(
        ["front", "left"],
        prefix,
        tolerance_ns=5 * MS,
        max_tracks=2,
        context=context,
        reliable=True,
        on_step=steps.append,
    )
    source = Node("fake_rvm", context=context)
    qos = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )
    pubs = {
        (cam, kind): source.create_publisher(
            msg_mod.FeatureMap if kind == "features" else msg_mod.TrackedPoints,
            f"{prefix}/{cam}/{kind}",
            qos,
        )
        for cam in ("front", "left")
        for kind in ("features", "tracks")
    }
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(planner.node)
    executor.add_node(source)
    stamp = 1_700_000_000 * 1_000_000_000 + 123 * MS
    maps = {"front": fmap("front", stamp), "left": fmap("left", stamp + 2 * MS)}
    tracks = {
        "front": trk("front", stamp, [4], [(20.0, 50.0)], [True]),
        "left": trk("left", stamp + 2 * MS, [1, 3], [(60.0, 60.0), (5.0, 5.0)], [True, False]),
    }
    try:
        # Wait for discovery (subscriptions matched), then publish once.
        deadline = time.monotonic() + 30.0
        while any(p.get_subscription_count() == 0 for p in pubs.values()):
            assert time.monotonic() < deadline, "planner subscriptions not discovered in 30 s"
            executor.spin_once(timeout_sec=0.05)
        for cam in ("front", "left"):
            pubs[(cam, "tracks")].publish(tracks_msg(msg_mod, tracks[cam]))
            pubs[(cam, "features")].publish(feature_map_msg(msg_mod, maps[cam]))
        while not steps:
            assert time.monotonic() < deadline, "no token step assembled in 30 s"
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        planner.destroy()
        source.destroy_node()
        rclpy.shutdown(context=context)
    step = steps[0]
    assert step.stamp_ns == stamp and step.stamps_ns == (stamp, stamp + 2 * MS)
    assert step.tokens.shape == (2, 1 + 16 + 2, 6)
    np.testing.assert_array_equal(step.tokens[0, 0], maps["front"].cls)
    np.testing.assert_array_equal(step.tokens[1, 1:17], maps["left"].features.reshape(16, 6))
    np.testing.assert_array_equal(step.track_ids, [[4, -1], [1, -1]])
    np.testing.assert_array_equal(step.tokens[0, 17], maps["front"].features[3, 1])
    np.testing.assert_array_equal(step.tokens[1, 17], maps["left"].features[3, 3])
    assert planner.rejected == 0 and len(steps) == 1
