"""rvm_node in its own process over real rclpy / Fast DDS: outputs, resets, batching,
bad inputs, services, QoS mismatches, diagnostics (issue 5, item 10).

One node process serves the whole module (four cameras, 64x64 tiny random model).
Every test uses its own stamps, so they do not depend on each other's order.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rvm_ros.msg")

from diagnostic_msgs.msg import DiagnosticArray
from node_harness import (
    Collector,
    NodeProcess,
    RosPeer,
    diag_values,
    float_image_msg,
    image_msg,
    jpeg_msg,
    pick_domain_id,
    qos,
    stamp_ns,
    wait_until,
)
from rvm_ros.msg import FeatureMap, TrackedPoints
from rvm_ros.srv import SetQueryPoints
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

pytestmark = pytest.mark.ros

S = 1_000_000_000
CAMERAS = ["front", "left", "back", "comp"]
MAX_PIXELS = 20_000


class Env:
    """The running node and the test peer with its subscriptions."""

    def __init__(self, node: NodeProcess, peer: RosPeer) -> None:
        self.node = node
        self.peer = peer
        self.features = {c: peer.collect(FeatureMap, f"/rvm/{c}/features") for c in CAMERAS}
        self.tracks = {c: peer.collect(TrackedPoints, f"/rvm/{c}/tracks") for c in CAMERAS}
        self.diag = peer.collect(DiagnosticArray, "/diagnostics")
        self.pubs = {c: peer.publisher(Image, f"/{c}/image_raw") for c in CAMERAS[:3]}
        self.pubs["comp"] = peer.publisher(CompressedImage, "/comp/image_raw/compressed")

    def send(self, camera: str, msg: Any) -> None:
        self.pubs[camera].publish(msg)

    def send_wait(self, camera: str, msg: Any) -> FeatureMap:
        """Publish and wait for the FeatureMap with the same stamp."""
        self.send(camera, msg)
        return self.features[camera].wait_stamp(stamp_ns(msg.header))

    def camera_diag(self, camera: str, pred: Any = None) -> dict[str, str]:
        """Key/values of ``camera``'s status in the newest diagnostics where ``pred`` holds."""

        def newest() -> dict[str, str] | None:
            for msg in reversed(self.diag.msgs):
                values = diag_values(msg, f"camera {camera}")
                if values is not None:
                    return values if pred is None or pred(values) else None
            return None

        return wait_until(newest, what=f"diagnostics of camera {camera}")

    def fresh_node_diag(self) -> dict[str, str]:
        """The node's status from a diagnostics message published after this call."""
        n = len(self.diag.msgs)
        # The second message arriving after now was certainly published after now.
        wait_until(lambda: len(self.diag.msgs) >= n + 2, what="fresh diagnostics")
        values = diag_values(self.diag.msgs[-1], ": node")
        assert values is not None
        return values

    def node_diag(self, pred: Any = None) -> dict[str, str]:
        def newest() -> dict[str, str] | None:
            for msg in reversed(self.diag.msgs):
                values = diag_values(msg, ": node")
                if values is not None:
                    return values if pred is None or pred(values) else None
            return None

        return wait_until(newest, what="diagnostics of the node")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    domain = pick_domain_id(__name__)
    log = tmp_path_factory.mktemp("node") / "rvm_node.log"
    node = NodeProcess(
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
            "cameras.comp.transport:=compressed",
            "-p",
            "model_height:=64",
            "-p",
            "model_width:=64",
            "-p",
            "track_grid:=2",
            "-p",
            "track_corners:=0",
            "-p",
            "reset_on_gap_s:=0.5",
            "-p",
            f"max_image_pixels:={MAX_PIXELS}",
            "-p",
            "max_batch_wait_ms:=150.0",
            "-p",
            "input_reliability:=reliable",
            "-p",
            "input_depth:=10",
            "-p",
            "output_depth:=50",
            "-p",
            "diagnostics_period_s:=0.2",
        ],
        domain,
        log,
    )
    peer = RosPeer(domain)
    try:
        node.wait_log("autostart: active")
        e = Env(node, peer)
        for pub in e.pubs.values():
            peer.wait_matched(pub)
        e.node_diag()  # diagnostics flow: the node's publishers are discovered too
        yield e
    finally:
        peer.close()
        code = node.stop()
        print(node.log())
        assert code == 0, f"rvm_node exited with {code}"


def test_outputs_carry_input_stamps_and_describe_the_features(env: Env) -> None:
    sent = [1000 * S + i * 50_000_000 for i in range(20)]
    for i, t in enumerate(sent):  # a 20 Hz camera
        env.send("front", image_msg(t, "front_optical", seed=i))
        time.sleep(0.05)
    last = env.features["front"].wait_stamp(sent[-1])  # the newest frame is always processed
    fms = env.features["front"].msgs
    assert {stamp_ns(m.header) for m in fms} <= set(sent)
    assert all(m.header.frame_id == "front_optical" for m in fms)
    assert last.camera == "front"
    assert last.model_id == "tiny-random0"
    assert (last.grid_height, last.grid_width, last.channels) == (4, 4, 64)
    assert last.dtype == FeatureMap.DTYPE_FLOAT16
    assert len(last.features) == 4 * 4 * 64 * 2 and len(last.cls_token) == 64 * 2
    feats = np.frombuffer(bytes(last.features), "<f2")
    assert np.isfinite(feats).all() and feats.std() > 0
    assert (last.image_height, last.image_width) == (48, 64)
    assert (last.model_height, last.model_width, last.resize_mode) == (64, 64, "stretch")
    assert last.cell_size == 16 and last.pool == 1
    assert fms[0].state_reset and fms[0].reset_reason == "first_frame"
    tracks = env.tracks["front"].wait_stamp(sent[-1])
    assert tracks.camera == "front" and len(tracks.points) == 4  # track_grid 2 x 2
    for p in tracks.points:
        assert 0 <= p.x < 64 and 0 <= p.y < 48 and 0.0 <= p.confidence <= 1.0
    assert {stamp_ns(m.header) for m in env.tracks["front"].msgs} <= set(sent)


def test_two_cameras_run_as_one_batched_step_with_their_own_headers(env: Env) -> None:
    before = int(env.fresh_node_diag()["steps"])
    pairs = 4
    for i in range(pairs):
        t = 2000 * S + i * 100_000_000
        env.send("front", image_msg(t, "front_optical", seed=i))
        env.send("left", image_msg(t + 1_000_000, "left_optical", seed=100 + i))
        f = env.features["front"].wait_stamp(t)
        g = env.features["left"].wait_stamp(t + 1_000_000)
        assert (f.camera, f.header.frame_id) == ("front", "front_optical")
        assert (g.camera, g.header.frame_id) == ("left", "left_optical")
        assert bytes(f.features) != bytes(g.features)
    # Both frames of each pair arrived within max_batch_wait_ms: one step per pair.
    assert int(env.fresh_node_diag()["steps"]) == before + pairs


def test_resets_are_flagged_and_counted(env: Env) -> None:
    def send(t: float, **kw: Any) -> FeatureMap:
        return env.send_wait("back", image_msg(int(t * S), "back", **kw))

    m = send(10.0)
    assert (m.state_reset, m.reset_reason, m.frames_since_reset, m.reset_count) == (
        True,
        "first_frame",
        0,
        1,
    )
    m = send(10.1)
    assert (m.state_reset, m.reset_reason, m.frames_since_reset) == (False, "", 1)
    m = send(10.05)  # time went backwards (a bag loop)
    assert (m.state_reset, m.reset_reason, m.reset_count) == (True, "time_backwards", 2)
    m = send(11.0)  # gap > reset_on_gap_s (0.5)
    assert (m.state_reset, m.reset_reason, m.reset_count) == (True, "gap", 3)
    m = send(11.1, height=32, width=40)
    assert (m.state_reset, m.reset_reason, m.reset_count) == (True, "resolution_change", 4)
    assert (m.image_height, m.image_width) == (32, 40)
    m = send(11.2, height=32, width=40)
    assert not m.state_reset and m.frames_since_reset == 1
    # A frame with NaN values: no output, the state is reset before the next frame.
    env.send("back", float_image_msg(int(11.3 * S), float("nan"), height=32, width=40))
    env.camera_diag("back", lambda v: "non_finite=1" in v["skipped_by_reason"])
    assert not env.features["back"].by_stamp(int(11.3 * S))
    m = send(11.4, height=32, width=40)
    assert (m.state_reset, m.reset_reason, m.reset_count) == (True, "non_finite", 5)
    resp = env.peer.call(Trigger, "/rvm/reset", Trigger.Request())
    assert resp.success, resp.message
    m = send(11.5, height=32, width=40)
    assert (m.state_reset, m.reset_reason, m.reset_count) == (True, "service", 6)
    diag = env.camera_diag("back", lambda v: int(v["processed"]) >= 8)
    assert diag["resets"] == "6"
    for reason in ("first_frame", "time_backwards", "gap", "resolution_change", "non_finite"):
        assert f"{reason}=1" in diag["resets_by_reason"]


def _bad_images(t0: int) -> list[tuple[str, Image]]:
    unknown = image_msg(t0, "front")
    unknown.encoding = "yuv999"
    short = image_msg(t0 + 1, "front")
    short.data = bytes(short.data)[: short.step * short.height - 7]
    empty = image_msg(t0 + 2, "front")
    empty.height, empty.width, empty.step, empty.data = 0, 0, 0, b""
    big = image_msg(t0 + 3, "front", height=150, width=150)  # 22500 > max_image_pixels
    return [
        ("unknown_encoding", unknown),
        ("size_mismatch", short),
        ("empty", empty),
        ("too_large", big),
    ]


def test_bad_inputs_are_logged_once_counted_and_later_frames_processed(env: Env) -> None:
    t0 = 3000 * S
    bad = _bad_images(t0)
    for _ in range(2):
        for _, msg in bad:
            env.send("front", msg)
        env.send("comp", jpeg_msg(t0 + 10, b"\xff\xd8\xff\xe0 this is not a JPEG"))
    good = image_msg(t0 + 100, "front")
    env.send_wait("front", good)
    ok, jpg = cv2.imencode(".jpg", np.full((24, 32, 3), 120, np.uint8))
    assert ok
    m = env.send_wait("comp", jpeg_msg(t0 + 200, jpg.tobytes()))
    assert (m.image_height, m.image_width) == (24, 32)
    for _, msg in bad:
        assert not env.features["front"].by_stamp(stamp_ns(msg.header))
    diag = env.camera_diag(
        "front", lambda v: sum(int(x) for x in re.findall(r"=(\d+)", v["rejected_by_cause"])) >= 8
    )
    assert diag["rejected_by_cause"] == "empty=2, size_mismatch=2, too_large=2, unknown_encoding=2"
    comp = env.camera_diag("comp", lambda v: "corrupt_compressed=2" in v["rejected_by_cause"])
    assert comp["rejected"] == "2"
    log = env.node.log()
    for cause, _ in bad:
        assert log.count(f"camera front: rejected an image from /front/image_raw ({cause})") == 1
    assert log.count("camera comp: rejected an image") == 1
    assert "yuv999" in log
    assert env.node.alive()


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16"])
def test_every_raw_encoding_is_processed(env: Env, encoding: str) -> None:
    t = 7000 * S + ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16"].index(encoding) * S
    m = env.send_wait("left", image_msg(t, "left", encoding=encoding, seed=3))
    assert (m.image_height, m.image_width) == (48, 64)
    assert np.isfinite(np.frombuffer(bytes(m.features), "<f2")).all()


def test_png_compressed_input_is_processed(env: Env) -> None:
    ok, png = cv2.imencode(".png", np.full((20, 30, 3), 200, np.uint8))
    assert ok
    msg = jpeg_msg(7100 * S, png.tobytes())
    msg.format = "png"
    m = env.send_wait("comp", msg)
    assert (m.image_height, m.image_width) == (20, 30)


def test_set_query_points_and_its_errors(env: Env) -> None:
    req = SetQueryPoints.Request(camera="front", x=[10.0, 40.0], y=[8.0, 30.0], append=False)
    resp = env.peer.call(SetQueryPoints, "/rvm/set_query_points", req)
    assert resp.success, resp.message
    assert len(resp.ids) == 2 and len(set(resp.ids)) == 2
    t = 4000 * S
    env.send_wait("front", image_msg(t, "front"))
    tracks = env.tracks["front"].wait_stamp(t)
    ids = [p.id for p in tracks.points]
    assert set(resp.ids) <= set(ids) and ids == sorted(ids)
    # camera "" adds the same points (same ids) to every camera.
    req = SetQueryPoints.Request(camera="", x=[5.0], y=[5.0], append=True)
    every = env.peer.call(SetQueryPoints, "/rvm/set_query_points", req, repeat=False)
    assert every.success and len(every.ids) == 1 and every.ids[0] not in resp.ids
    t2 = t + 100_000_000
    env.send_wait("front", image_msg(t2, "front"))
    ids2 = {p.id for p in env.tracks["front"].wait_stamp(t2).points}
    assert set(resp.ids) | set(every.ids) <= ids2  # append kept the earlier points
    env.send_wait("left", image_msg(7500 * S, "left"))
    assert every.ids[0] in {p.id for p in env.tracks["left"].wait_stamp(7500 * S).points}
    bad = env.peer.call(
        SetQueryPoints,
        "/rvm/set_query_points",
        SetQueryPoints.Request(camera="nope", x=[1.0], y=[1.0]),
    )
    assert not bad.success and "nope" in bad.message
    bad = env.peer.call(
        SetQueryPoints,
        "/rvm/set_query_points",
        SetQueryPoints.Request(camera="front", x=[1.0, 2.0], y=[1.0]),
    )
    assert not bad.success and "differ in length" in bad.message


def test_query_points_are_bounded_and_tracks_keep_coming(env: Env) -> None:
    """Issue 27: 2,000,000 points were accepted and stalled the tracker for good."""
    call = env.peer.call
    many = SetQueryPoints.Request(camera="front", x=[5.0] * 5000, y=[5.0] * 5000)
    resp = call(SetQueryPoints, "/rvm/set_query_points", many)
    assert not resp.success and "query points: 5000 is more than the 4096 allowed" in resp.message
    # In total too: appends may not grow a camera's points past the bound.
    fill = SetQueryPoints.Request(camera="front", x=[5.0] * 4000, y=[5.0] * 4000, append=False)
    assert call(SetQueryPoints, "/rvm/set_query_points", fill).success
    more = SetQueryPoints.Request(camera="front", x=[6.0] * 200, y=[6.0] * 200, append=True)
    resp = call(SetQueryPoints, "/rvm/set_query_points", more)
    assert not resp.success and "4200 is more than the 4096 allowed" in resp.message
    # Replacing them with two points works, and their tracks come.
    two = SetQueryPoints.Request(camera="front", x=[10.0, 20.0], y=[8.0, 9.0], append=False)
    resp = call(SetQueryPoints, "/rvm/set_query_points", two)
    assert resp.success, resp.message
    t = 4500 * S
    env.send_wait("front", image_msg(t, "front"))
    ids = {p.id for p in env.tracks["front"].wait_stamp(t).points}
    assert set(resp.ids) <= ids and len(ids) < 100
    assert env.node_diag()  # and the node still reports


def test_debug_image_is_published_to_subscribers(env: Env) -> None:
    col: Collector = env.peer.collect(Image, "/rvm/front/debug_image")
    wait_until(
        lambda: env.peer.node.count_publishers("/rvm/front/debug_image") > 0, what="debug pub"
    )
    t = 5000 * S
    sent: list[int] = []
    # The node learns about the subscriber asynchronously: resend until an image comes.
    deadline = time.monotonic() + 60
    while not col.msgs and time.monotonic() < deadline:
        sent.append(t + len(sent) * 10_000_000)
        env.send_wait("front", image_msg(sent[-1], "front_optical"))
        time.sleep(0.02)
    wait_until(lambda: col.msgs, what="a debug image")
    img = col.msgs[0]
    assert img.encoding == "rgb8" and (img.height, img.width) == (48, 64)
    assert len(img.data) == 48 * 64 * 3
    assert img.header.frame_id == "front_optical"
    assert stamp_ns(img.header) in sent


def test_incompatible_qos_is_reported_in_log_and_diagnostics(env: Env) -> None:
    env.peer.publisher(Image, "/left/image_raw", qos(reliable=False))
    env.node.wait_log("incompatible QoS on input topic '/left/image_raw'")
    env.peer.collect(FeatureMap, "/rvm/left/features", qos(transient=True))
    env.node.wait_log("incompatible QoS on output topic '/rvm/left/features'")
    log = env.node.log()
    assert "policy: reliability" in log and "input_reliability:=best_effort" in log
    assert "policy: durability" in log
    diag = env.node_diag(lambda v: "/rvm/left/features" in v["qos_incompatible"])
    assert "/left/image_raw=" in diag["qos_incompatible"]


def test_every_received_frame_is_processed_dropped_or_rejected(env: Env) -> None:
    sent = [6000 * S + i * 1_000_000 for i in range(40)]
    for i, t in enumerate(sent):
        env.send("front", image_msg(t, "front", seed=i))
    env.features["front"].wait_stamp(sent[-1])  # the newest frame is processed
    got = {stamp_ns(m.header) for m in env.features["front"].msgs} & set(sent)

    def settled(v: dict[str, str]) -> bool:
        rejected = int(v["rejected"])
        skipped = sum(int(x) for x in re.findall(r"=(\d+)", v["skipped_by_reason"]))
        accounted = int(v["processed"]) + int(v["dropped"]) + int(v["ignored_inactive"])
        return int(v["received"]) == accounted + rejected + skipped

    diag = env.camera_diag("front", settled)
    assert int(diag["processed"]) >= len(got)
    node = env.node_diag()
    assert float(node["step_latency_p50_ms"]) > 0
    assert float(node["step_latency_p99_ms"]) >= float(node["step_latency_p50_ms"])
    assert node["runtime"].startswith("torch fp32 on cpu, model tiny-random0")


def test_node_log_prints_qos_at_start(env: Env) -> None:
    log = env.node.log()
    assert (
        "camera front: subscribing /front/image_raw (Image, reliability=reliable "
        "durability=volatile history=keep_last depth=10)" in log
    )
    assert "camera comp: subscribing /comp/image_raw/compressed (CompressedImage" in log
