"""End to end: the real ``rvm_node`` (random tiny model) feeding the planner-tokens example.

The node runs in its own process (``test/node/node_harness.py``) on a private ROS domain;
this process publishes camera images for two cameras, runs the example's
``PlannerTokensNode`` and, independently, collects the node's FeatureMap / TrackedPoints
messages to check every token of the assembled tensor against them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("rclpy", reason="rclpy not importable: run under scripts/ros-env")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))

import rclpy
from node_harness import (
    NodeProcess,
    image_msg,
    pick_domain_id,
    qos,
    stamp_ns,
)
from rclpy.executors import SingleThreadedExecutor
from rvm_ros.msg import FeatureMap, TrackedPoints
from sensor_msgs.msg import Image

from rvm_ros.wire.feature_map_decode import feature_map_to_numpy, pixel_to_cell
from rvm_ros.wire.tracks_decode import tracks_to_numpy

pytestmark = pytest.mark.ros

CAMERAS = ["front", "left"]
S = 1_000_000_000
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, int]]:
    domain = pick_domain_id(__name__)
    log = tmp_path_factory.mktemp("planner_node") / "rvm_node.log"
    proc = NodeProcess(
        [
            "--params-file",
            "config/rvm.yaml",
            "-p",
            "checkpoint:=random:tiny",
            "-p",
            "backend:=torch",
            "-p",
            f"cameras:=[{', '.join(CAMERAS)}]",
            "-p",
            "model_height:=64",
            "-p",
            "model_width:=64",
            "-p",
            "track_grid:=2",
            "-p",
            "input_reliability:=reliable",
            "-p",
            "input_depth:=10",
            "-p",
            "output_depth:=20",
            "-p",
            "feature_dtype:=float32",
            "-p",
            "scene_tokens.enabled:=true",
            # Every tracked point visible: this tests the plumbing, not the tracker's
            # confidence on random frames with a random model.
            "-p",
            "tracker.visibility_threshold:=0.0",
            "-p",
            "max_batch_wait_ms:=300.0",
        ],
        domain,
        log,
    )
    try:
        proc.wait_log("autostart: active")
        yield proc, domain
    finally:
        proc.stop()


def test_tokens_from_the_real_node(
    node: tuple[NodeProcess, int], planner_tokens: ModuleType
) -> None:
    proc, domain = node
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    steps: list[Any] = []
    planner = planner_tokens.PlannerTokensNode(
        "/rvm", CAMERAS, max_tracks=4, context=context, reliable=True, on_step=steps.append
    )
    peer = rclpy.create_node("planner_test_peer", context=context)
    features: list[Any] = []
    tracks: list[Any] = []
    for cam in CAMERAS:
        peer.create_subscription(FeatureMap, f"/rvm/{cam}/features", features.append, qos())
        peer.create_subscription(TrackedPoints, f"/rvm/{cam}/tracks", tracks.append, qos())
    pubs = {cam: peer.create_publisher(Image, f"/{cam}/image_raw", qos()) for cam in CAMERAS}
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(planner.node)
    executor.add_node(peer)

    def spin_until(done: Any, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not done():
            assert proc.alive(), f"rvm_node exited:\n{proc.log()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{proc.log()}"
            executor.spin_once(timeout_sec=0.05)

    try:
        spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), "inputs")
        outputs = [f"/rvm/{c}/{kind}" for c in CAMERAS for kind in ("features", "tracks")]
        outputs.append("/rvm/scene_tokens")
        spin_until(lambda: all(peer.count_publishers(t) > 0 for t in outputs), "node outputs")
        t0 = 1_800_000_000 * S
        for k in range(3):  # three synchronised frames, 100 ms apart
            for i, cam in enumerate(CAMERAS):
                pubs[cam].publish(image_msg(t0 + k * S // 10, cam, seed=10 * k + i))
            spin_until(lambda k=k: len(steps) > k, f"token step {k}")
        t_last = t0 + 2 * S // 10
        spin_until(
            lambda: sum(stamp_ns(m.header) == t_last for m in features + tracks) == 4,
            "the last frame's features and tracks at the peer",
        )
    finally:
        executor.shutdown()
        planner.destroy()
        peer.destroy_node()
        rclpy.shutdown(context=context)

    step = steps[-1]
    x = step.inputs
    assert step.stamp_ns == t_last and step.cameras == tuple(CAMERAS)
    assert x["img_feats"].shape == (2, 64, 4, 4)  # tiny model: D 64, 64 px / 16 = 4x4
    # No CameraInfo was published: the tokens are there, the geometry is not (NaN).
    assert x["has_tokens"].tolist() == [True, True] and x["valid"].tolist() == [False, False]
    assert torch.isnan(x["projection_mat"]).all()
    for i, cam in enumerate(CAMERAS):
        fmap = next(
            feature_map_to_numpy(m)
            for m in features
            if m.camera == cam and stamp_ns(m.header) == t_last
        )
        np.testing.assert_array_equal(x["cls"][i].numpy(), fmap.cls)
        np.testing.assert_array_equal(x["img_feats"][i].permute(1, 2, 0).numpy(), fmap.features)
        trk = next(
            tracks_to_numpy(m) for m in tracks if m.camera == cam and stamp_ns(m.header) == t_last
        )
        row, col, valid = pixel_to_cell(fmap, trk.xs, trk.ys)
        usable = np.flatnonzero(valid & trk.visible)
        usable = usable[np.argsort(trk.ids[usable])][:4]
        n = usable.size
        np.testing.assert_array_equal(step.track_ids[i, :n], trk.ids[usable])
        assert (step.track_ids[i, n:] == -1).all()
        np.testing.assert_array_equal(
            step.track_tokens[i, :n].numpy(), fmap.features[row[usable], col[usable]]
        )
        assert step.track_mask[i, :n].all() and not step.track_mask[i, n:].any()
    assert step.track_mask.any(), "no visible tracked point became a token"
    assert planner.rejected == 0
