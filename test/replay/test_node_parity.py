"""Replayed features equal those the live node publishes for the same frames.

The bag's frames are published over real DDS to ``rvm_node`` (its own process, private
ROS domain, reliable QoS, one frame at a time so that the node processes every frame),
and the same bag is replayed offline with the same parameters file. Every FeatureMap
(payload bytes, CLS token, reset fields, geometry) and every TrackedPoints must match.

With two cameras whose frames share stamps, the node's live batching
(``LatestFrameSlots``: it waits up to ``max_batch_wait_ms`` for every camera) and the
replay's offline rule (``group_batches`` on the stamps) must both run the two cameras in
one batched step, and the outputs must still match byte for byte.
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
from bag_helpers import FRAMES, WIDTH

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.bags.make_bag import make_bag
from rvm_ros.pipeline import FrameInput, group_batches
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
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"no node test harness at {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _params_file(
    path: Path, topics: dict[str, str], transport: str, max_batch_wait_ms: float = 5.0
) -> Path:
    cams = ", ".join(topics)
    lines = [
        "rvm:",
        "  ros__parameters:",
        "    checkpoint: random:tiny",
        "    backend: torch",
        f"    cameras: [{cams}]",
    ]
    for cam, topic in topics.items():
        lines += [f"    cameras.{cam}.topic: {topic}", f"    cameras.{cam}.transport: {transport}"]
    lines += [
        "    model_height: 64",
        "    model_width: 96",
        "    feature_dtype: float32",
        "    feature_pool: 2",
        "    track_grid: 3",
        "    input_reliability: reliable",
        "    input_depth: 50",
        "    output_depth: 50",
        "    publish_debug_image: false",
        f"    max_batch_wait_ms: {max_batch_wait_ms}",
        "    diagnostics_period_s: 0.2",
    ]
    path.write_text("\n".join(lines) + "\n")
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


def _offline(bag: Path, cams: list[str], params: Path, out: Path) -> dict[str, list[Any]]:
    settings = ReplaySettings(config=params, progress=False, visuals=False)
    outcome = replay([bag], out, settings)
    assert outcome.complete
    got: dict[str, list[Any]] = {}
    with bags.BagReader(out / "features") as reader:
        for cam in cams:
            got[f"{cam}/features"] = [m.msg for m in reader.messages([f"/rvm/{cam}/features"])]
            got[f"{cam}/tracks"] = [m.msg for m in reader.messages([f"/rvm/{cam}/tracks"])]
    for msgs in got.values():
        assert len(msgs) == FRAMES
    return got


def _live(
    h: ModuleType,
    bag: Path,
    topics: dict[str, str],
    msg_type: Any,
    params: Path,
    tmp_path: Path,
    offline: dict[str, list[Any]],
) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """Publish the bag's recorded bytes to the node, one step's frames at a time."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rvm_ros.msg import FeatureMap, TrackedPoints

    cams = list(topics)
    camera_of = {topic: cam for cam, topic in topics.items()}
    domain = h.pick_domain_id(__name__ + "_".join(cams))
    node = h.NodeProcess(["--params-file", str(params)], domain, tmp_path / "node.log")
    peer = h.RosPeer(domain, "rvm_replay_parity_peer")
    try:
        node.wait_log("autostart: active")
        out_qos = h.qos(reliable=True, depth=100)
        cols = {}
        for cam in cams:
            cols[f"{cam}/features"] = peer.collect(FeatureMap, f"/rvm/{cam}/features", out_qos)
            cols[f"{cam}/tracks"] = peer.collect(TrackedPoints, f"/rvm/{cam}/tracks", out_qos)
        diag = peer.collect(DiagnosticArray, "/diagnostics")
        pubs = {
            topic: peer.publisher(msg_type, topic, h.qos(reliable=True, depth=50))
            for topic in topics.values()
        }
        for pub in pubs.values():
            peer.wait_matched(pub)
        for cam in cams:
            h.wait_until(
                lambda cam=cam: peer.node.count_publishers(f"/rvm/{cam}/features") > 0,
                what=f"the node's feature publisher of {cam}",
            )
        with bags.BagReader(bag) as reader:
            pending: list[str] = []
            step = 0
            for got_topic, _msgtype, _ts, data in reader.raw_messages(list(topics.values())):
                pubs[got_topic].publish(data)  # the recorded CDR bytes, unchanged
                pending.append(camera_of[got_topic])
                if len(pending) == len(cams):  # one step's frames sent: wait for its outputs
                    for cam in pending:
                        stamp = _key(offline[f"{cam}/features"][step])
                        cols[f"{cam}/features"].wait_stamp(stamp)
                    pending, step = [], step + 1
        for cam in cams:
            h.wait_until(
                lambda cam=cam: len(cols[f"{cam}/tracks"].msgs) >= FRAMES,
                what=f"all track messages of {cam}",
            )
        n = len(diag.msgs)  # the second message from now on was published after every output
        h.wait_until(lambda: len(diag.msgs) >= n + 2, what="fresh diagnostics")
        status = h.diag_values(diag.msgs[-1], ": node")
        assert status is not None
        live = {key: col.msgs for key, col in cols.items()}
    finally:
        peer.close()
        code = node.stop()
    assert code == 0, node.log()
    return live, status


def _assert_same(live: dict[str, list[Any]], offline: dict[str, list[Any]]) -> None:
    assert live.keys() == offline.keys()
    for key in offline:
        if key.endswith("/features"):
            assert [_key(m) for m in live[key]] == [_key(m) for m in offline[key]], key
            for a, b in zip(live[key], offline[key], strict=True):
                assert _fmap_tuple(a) == _fmap_tuple(b), key
        else:
            assert [_tracks_tuple(m) for m in live[key]] == [
                _tracks_tuple(m) for m in offline[key]
            ], key


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_replay_equals_live_node(
    bag_factory: Callable[..., Path], repo_root: Path, tmp_path: Path, transport: str
) -> None:
    h = _harness(repo_root)
    from sensor_msgs.msg import CompressedImage, Image

    compressed = transport == "compressed"
    bag = bag_factory("sqlite3" if compressed else "mcap", compressed)
    topic = TOPIC + ("/compressed" if compressed else "")
    params = _params_file(tmp_path / "params.yaml", {CAMERA: topic}, transport)
    offline = _offline(bag, [CAMERA], params, tmp_path / "replay")
    msg_type = CompressedImage if compressed else Image
    live, status = _live(h, bag, {CAMERA: topic}, msg_type, params, tmp_path, offline)
    _assert_same(live, offline)
    assert status["steps"] == str(FRAMES)
    # Sanity: the payloads are real features, not empty.
    assert len(offline[f"{CAMERA}/features"][0].features) == 2 * 3 * 64 * 4


def test_two_cameras_batched_in_one_step_live_and_offline(
    sample_video: Path, repo_root: Path, tmp_path: Path
) -> None:
    h = _harness(repo_root)
    from sensor_msgs.msg import Image

    bag = tmp_path / "two_cams"
    result = make_bag([sample_video, sample_video], bag, "mcap", max_frames=FRAMES, width=WIDTH)
    cams = [c.camera for c in result.cameras]  # carphone_pristine, carphone_pristine_1
    topics = {c.camera: c.topic for c in result.cameras}
    wait_ms = 1000.0  # the node waits this long for the second camera of a step
    params = _params_file(tmp_path / "params.yaml", topics, "raw", max_batch_wait_ms=wait_ms)

    # Offline grouping of the bag's frames: every step holds both cameras.
    camera_of = {topic: cam for cam, topic in topics.items()}
    with bags.BagReader(bag) as reader:
        frames = [
            FrameInput(camera_of[m.topic], _key(m.msg), None, np.zeros((0, 0, 3), np.uint8))
            for m in reader.messages(list(topics.values()))
        ]
    batches = list(group_batches(frames, wait_ms, max_batch=len(cams)))
    assert [sorted(f.camera for f in b) for b in batches] == [sorted(cams)] * FRAMES

    offline = _offline(bag, cams, params, tmp_path / "replay")
    live, status = _live(h, bag, topics, Image, params, tmp_path, offline)
    # Live batching (LatestFrameSlots) took both cameras in every step, as offline did.
    assert status["steps"] == str(FRAMES) and status["mean_batch_size"] == "2.00", status
    _assert_same(live, offline)
