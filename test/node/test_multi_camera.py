"""config/multi_camera.yaml: six cameras in one node, batched, each output with its header."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rvm_ros.msg")

from diagnostic_msgs.msg import DiagnosticArray
from node_harness import NodeProcess, RosPeer, diag_values, image_msg, pick_domain_id, wait_until
from rvm_ros.msg import FeatureMap
from sensor_msgs.msg import Image

from rvm_ros.pipeline.params import load_params_file

pytestmark = pytest.mark.ros

S = 1_000_000_000


def test_six_cameras_from_multi_camera_yaml(repo_root, tmp_path) -> None:
    params = load_params_file(repo_root / "config" / "multi_camera.yaml")
    cams = list(params["cameras"])
    assert len(cams) == 6
    domain = pick_domain_id(__name__)
    node = NodeProcess(
        [
            "--params-file",
            "config/multi_camera.yaml",
            "-p",
            "checkpoint:=random:tiny",
            "-p",
            "backend:=torch",
            "-p",
            "model_height:=64",
            "-p",
            "model_width:=64",
            "-p",
            "input_reliability:=reliable",
            "-p",
            "max_batch_wait_ms:=300.0",
            "-p",
            "diagnostics_period_s:=0.2",
            "-p",
            "feature_dtype:=float32",
            # Topics are remappable with ordinary ROS remapping rules, inputs and outputs.
            "-r",
            "/rear/image_raw:=/remapped/rear",
            "-r",
            "/rvm/front/features:=/planner/front_features",
        ],
        domain,
        tmp_path / "rvm_node.log",
    )
    peer = RosPeer(domain)
    try:
        node.wait_log("autostart: active")
        outs = {c: peer.collect(FeatureMap, f"/rvm/{c}/features") for c in cams}
        outs["front"] = peer.collect(FeatureMap, "/planner/front_features")
        topics = {c: params[f"cameras.{c}.topic"] for c in cams}
        topics["rear"] = "/remapped/rear"
        diag = peer.collect(DiagnosticArray, "/diagnostics")
        pubs = {c: peer.publisher(Image, topics[c]) for c in cams}
        for pub in pubs.values():
            peer.wait_matched(pub)
        wait_until(lambda: diag.msgs, what="diagnostics")
        for k, c in enumerate(cams):
            pubs[c].publish(image_msg(50 * S + k * 1_000_000, f"{c}_optical", seed=k))
        for k, c in enumerate(cams):
            m = outs[c].wait_stamp(50 * S + k * 1_000_000)
            assert (m.camera, m.header.frame_id) == (c, f"{c}_optical")
            assert m.pool == 2 and (m.grid_height, m.grid_width) == (2, 2)  # feature_pool 2
            assert m.dtype == FeatureMap.DTYPE_FLOAT32 and len(m.features) == 2 * 2 * 64 * 4

        # All six frames arrived within max_batch_wait_ms: one batched step. (The second
        # diagnostics message arriving from now on was published after every output.)
        n = len(diag.msgs)
        wait_until(lambda: len(diag.msgs) >= n + 2, what="fresh diagnostics")
        node_status = diag_values(diag.msgs[-1], ": node")
        assert node_status is not None and node_status["steps"] == "1"
        log = node.log()
        assert len(re.findall(r"camera \w+: subscribing /\w+/image_raw", log)) == 5
        assert "camera rear: subscribing /remapped/rear" in log
    finally:
        peer.close()
        code = node.stop()
    assert code == 0
