"""The node's serialized (raw) image intake over real Fast DDS (issue 17).

A peer publishes serialized bytes (``Publisher.publish(bytes)``: rclpy's raw publish, the
payload goes on the wire unchanged) to the node, which runs with its defaults
(``raw_subscriptions: true``). Well-formed CDR from ``serialize_message`` is processed
like a message; malformed byte strings (truncated, lengths past the end, an unknown
encapsulation) are rejected, counted per cause in ``/diagnostics``, and the node keeps
processing the next good frame.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

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
    image_msg,
    jpeg_msg,
    pick_domain_id,
    wait_until,
)
from rclpy.serialization import serialize_message
from rvm_ros.msg import FeatureMap
from sensor_msgs.msg import CompressedImage, Image

from rvm_ros.imaging.encode import array_to_compressed_fields

pytestmark = pytest.mark.ros
S = 1_000_000_000
_BASES = itertools.count(10)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, RosPeer]]:
    domain = pick_domain_id(__name__)
    node = NodeProcess(
        [
            "-p",
            "checkpoint:=random:tiny",
            "-p",
            "backend:=torch",
            "-p",
            "cameras:=[front, comp]",
            "-p",
            "cameras.comp.transport:=compressed",
            "-p",
            "model_height:=32",
            "-p",
            "model_width:=32",
            "-p",
            "tracking:=false",
            "-p",
            "input_reliability:=reliable",
            "-p",
            "input_depth:=10",
            "-p",
            "max_batch_wait_ms:=0.0",
            "-p",
            "diagnostics_period_s:=0.2",
        ],
        domain,
        tmp_path_factory.mktemp("raw") / "rvm_node.log",
    )
    peer = RosPeer(domain)
    try:
        node.wait_log("autostart: active")
        yield node, peer
    finally:
        peer.close()
        node.stop()


def _camera_values(diag: Collector, camera: str, pred: Any) -> dict[str, str]:
    def newest() -> dict[str, str] | None:
        for msg in reversed(diag.msgs):
            values = diag_values(msg, f"camera {camera}")
            if values is not None:
                return values if pred(values) else None
        return None

    return wait_until(newest, what=f"diagnostics of camera {camera}")


def _truncated(payload: bytes) -> bytes:
    return payload[: len(payload) // 2]


def _absurd_length(payload: bytes) -> bytes:
    # header.frame_id's length (bytes 12..16, after the encapsulation and the stamp).
    return payload[:12] + (2**32 - 1).to_bytes(4, "little") + payload[16:]


def _bad_encapsulation(payload: bytes) -> bytes:
    return b"\x00\x09" + payload[2:]


@pytest.mark.parametrize(
    ("camera", "mangle", "cause"),
    [
        ("front", _truncated, "cdr_length"),
        ("front", _absurd_length, "cdr_length"),
        ("front", _bad_encapsulation, "cdr_encapsulation"),
        ("front", lambda p: p[:3], "cdr_encapsulation"),
        ("front", lambda p: p[:9], "cdr_truncated"),
        ("comp", _truncated, "cdr_length"),
        ("comp", lambda p: p + b"\x00" * 8, "cdr_trailing"),
    ],
)
def test_serialized_frames_are_processed_and_malformed_ones_counted(
    env: tuple[NodeProcess, RosPeer], camera: str, mangle: Any, cause: str
) -> None:
    node, peer = env
    msg_type = Image if camera == "front" else CompressedImage
    topic = "/front/image_raw" if camera == "front" else "/comp/image_raw/compressed"
    pub = peer.publisher(msg_type, topic)
    features = peer.collect(FeatureMap, f"/rvm/{camera}/features")
    diag = peer.collect(DiagnosticArray, "/diagnostics")
    peer.wait_matched(pub)
    base = next(_BASES) * 100 * S

    def good(t_ns: int) -> bytes:
        if camera == "front":
            return bytes(serialize_message(image_msg(t_ns, height=24, width=32)))
        rgb = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
        return bytes(
            serialize_message(jpeg_msg(t_ns, array_to_compressed_fields(rgb, "jpeg")["data"]))
        )

    before = _camera_values(diag, camera, lambda v: True)
    pub.publish(good(base))  # raw publish: the bytes go on the wire as they are
    features.wait_stamp(base)
    pub.publish(mangle(good(base + S)))
    values = _camera_values(
        diag,
        camera,
        lambda v: (
            f"{cause}=" in v["rejected_by_cause"] and int(v["rejected"]) > int(before["rejected"])
        ),
    )
    assert int(values["rejected"]) >= 1
    pub.publish(good(base + 2 * S))  # still processing
    features.wait_stamp(base + 2 * S)
    assert node.alive()
    assert f"({cause})" in node.log()  # logged once per cause, with the cause key
