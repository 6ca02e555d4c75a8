"""Replayed features equal those the live node publishes for the same frames.

The bag's frames are published over real DDS to ``rvm_node`` (its own process, private
ROS domain, reliable QoS, one frame at a time so that the node processes every frame),
and the same bag is replayed offline with the same parameters file. Every FeatureMap
(payload bytes, CLS token, reset fields, geometry) and every TrackedPoints must match.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from replay_helpers import FRAMES

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.replay.settings import ReplaySettings
from rvm_ros.replay.workers import replay

pytestmark = pytest.mark.ros

CAMERA = "carphone_pristine"
TOPIC = f"/cameras/{CAMERA}/image_raw"


def _harness(repo_root: Path) -> ModuleType:
    name = "node_harness"
    if name in sys.modules:
        return sys.modules[name]
    path = repo_root / "test" / "node" / "node_harness.py"
    if not path.is_file():
        pytest.skip(f"the node's test harness {path} does not exist")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _params_file(path: Path, topic: str, transport: str) -> Path:
    path.write_text(
        "rvm:\n"
        "  ros__parameters:\n"
        "    checkpoint: random:tiny\n"
        "    backend: torch\n"
        f"    cameras: [{CAMERA}]\n"
        f"    cameras.{CAMERA}.topic: {topic}\n"
        f"    cameras.{CAMERA}.transport: {transport}\n"
        "    model_height: 64\n"
        "    model_width: 96\n"
        "    feature_dtype: float32\n"
        "    feature_pool: 2\n"
        "    track_grid: 3\n"
        "    input_reliability: reliable\n"
        "    input_depth: 50\n"
        "    output_depth: 50\n"
        "    publish_debug_image: false\n"
    )
    return path


def _key(m: Any) -> int:
    return int(m.header.stamp.sec) * 1_000_000_000 + int(m.header.stamp.nanosec)


def _fmap_tuple(m: Any) -> tuple[Any, ...]:
    return (
        bytes(np.asarray(m.features, np.uint8).tobytes()),
        bytes(np.asarray(m.cls_token, np.uint8).tobytes()),
        m.camera,
        m.model_id,
        m.grid_height,
        m.grid_width,
        m.channels,
        m.dtype,
        m.frames_since_reset,
        m.state_reset,
        m.reset_reason,
        m.reset_count,
        m.image_height,
        m.image_width,
        m.resize_mode,
        m.scale_x,
        m.scale_y,
        m.offset_x,
        m.offset_y,
        m.cell_size,
        m.pool,
        m.header.frame_id,
    )


def _tracks_tuple(m: Any) -> tuple[Any, ...]:
    return (
        m.camera,
        m.seq,
        tuple((p.id, p.x, p.y, p.visible, p.confidence) for p in m.points),
    )


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_replay_equals_live_node(
    bag_factory: Callable[..., Path], repo_root: Path, tmp_path: Path, transport: str
) -> None:
    if importlib.util.find_spec("rvm_ros.node.main") is None:
        pytest.skip("rvm_node (rvm_ros.node.main) does not exist yet")
    h = _harness(repo_root)
    from rvm_ros.msg import FeatureMap, TrackedPoints
    from sensor_msgs.msg import CompressedImage, Image

    compressed = transport == "compressed"
    bag = bag_factory("sqlite3" if compressed else "mcap", compressed)
    topic = TOPIC + ("/compressed" if compressed else "")
    msg_type = CompressedImage if compressed else Image
    params = _params_file(tmp_path / "params.yaml", topic, transport)

    # Offline.
    settings = ReplaySettings(config=params, progress=False, visuals=False)
    outcome = replay([bag], tmp_path / "replay", settings)
    assert outcome.complete
    with bags.BagReader(tmp_path / "replay" / "features") as reader:
        offline_f = [m.msg for m in reader.messages([f"/rvm/{CAMERA}/features"])]
        offline_t = [m.msg for m in reader.messages([f"/rvm/{CAMERA}/tracks"])]
    assert len(offline_f) == len(offline_t) == FRAMES

    # Live: the node in its own process, frames published one at a time over DDS.
    domain = h.pick_domain_id(__name__)
    node = h.NodeProcess(["--params-file", str(params)], domain, tmp_path / "node.log")
    peer = h.RosPeer(domain, "rvm_replay_parity_peer")
    try:
        node.wait_log("autostart: active")
        out_qos = h.qos(reliable=True, depth=100)
        feats = peer.collect(FeatureMap, f"/rvm/{CAMERA}/features", out_qos)
        tracks = peer.collect(TrackedPoints, f"/rvm/{CAMERA}/tracks", out_qos)
        pub = peer.publisher(msg_type, topic, h.qos(reliable=True, depth=50))
        peer.wait_matched(pub)
        h.wait_until(
            lambda: peer.node.count_publishers(f"/rvm/{CAMERA}/features") > 0,
            what="the node's feature publisher",
        )
        with bags.BagReader(bag) as reader:
            for got_topic, _msgtype, _ts, data in reader.raw_messages([topic]):
                assert got_topic == topic
                pub.publish(data)  # the recorded CDR bytes, unchanged
                stamp = _key(offline_f[len(feats.msgs)])
                feats.wait_stamp(stamp)
        h.wait_until(lambda: len(tracks.msgs) >= FRAMES, what="all track messages")
        live_f = feats.msgs
        live_t = tracks.msgs
    finally:
        peer.close()
        code = node.stop()
    assert code == 0, node.log()
    assert [_key(m) for m in live_f] == [_key(m) for m in offline_f]
    for live, off in zip(live_f, offline_f, strict=True):
        assert _fmap_tuple(live) == _fmap_tuple(off)
    assert [_tracks_tuple(m) for m in live_t] == [_tracks_tuple(m) for m in offline_t]
    # Sanity: the payloads are real features, not empty.
    assert len(offline_f[0].features) == 2 * 3 * 64 * 4
