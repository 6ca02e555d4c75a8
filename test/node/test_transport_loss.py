"""Frames lost in transport show up in /diagnostics (issue 17), over real Fast DDS.

A camera publishing 640x480 bgr8 frames ``best_effort`` over Fast DDS defaults (no
shared-memory profile: the 921,600-byte frames exceed the default 512 KiB segment and
go over UDP loopback in fragments) loses most frames at 30 Hz bursts. The node, in its
own process, must count the loss per camera from the RMW's message-lost event and say
so with a WARN naming the cause within 5 s of the first frame.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rvm_ros.msg")

from diagnostic_msgs.msg import DiagnosticArray
from node_harness import NodeProcess, RosPeer, pick_domain_id, qos, stamp, wait_until
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from rvm_ros.node.diagnostics import LOSS_HINT, WARN

pytestmark = pytest.mark.ros


@pytest.fixture(params=[True, False], ids=["raw", "ordinary"])
def node_and_peer(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[NodeProcess, RosPeer]]:
    # Fast DDS defaults in both processes: no large shared-memory segment.
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("RMW_FASTRTPS_USE_QOS_FROM_XML", raising=False)
    domain = pick_domain_id(f"{__name__}:{request.param}")
    node = NodeProcess(
        [
            "-p",
            "checkpoint:=random:tiny",
            "-p",
            "backend:=torch",
            "-p",
            "model_height:=32",
            "-p",
            "model_width:=32",
            "-p",
            "tracking:=false",
            "-p",
            "publish_debug_image:=false",
            "-p",
            "input_reliability:=best_effort",
            "-p",
            f"raw_subscriptions:={'true' if request.param else 'false'}",
            "-p",
            "diagnostics_period_s:=0.5",
        ],
        domain,
        tmp_path / "rvm_node.log",
    )
    peer = RosPeer(domain)
    try:
        node.wait_log("autostart: active")
        yield node, peer
    finally:
        peer.close()
        node.stop()


def test_lost_frames_are_counted_and_warned_within_5_s(
    node_and_peer: tuple[NodeProcess, RosPeer],
) -> None:
    node, peer = node_and_peer
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ
    diag: list[DiagnosticArray] = []
    peer.node.create_subscription(DiagnosticArray, "/diagnostics", diag.append, qos())
    pub = peer.publisher(Image, "/front/image_raw", qos(reliable=False, depth=1))
    peer.wait_matched(pub)
    frames = [
        np.random.default_rng(i).integers(0, 256, 480 * 640 * 3, dtype=np.uint8).tobytes()
        for i in range(4)
    ]

    def lost_warning() -> dict[str, str] | None:
        for arr in list(diag):
            for st in arr.status:
                values = {kv.key: kv.value for kv in st.values}
                if st.name.endswith("camera front") and int(values["lost_in_transport"]) > 0:
                    assert st.level == bytes([WARN])
                    assert LOSS_HINT in st.message and "message-lost event" in st.message
                    return values
        return None

    start = time.monotonic()
    i = 0
    found = None
    while time.monotonic() - start < 5.0 and found is None:
        # A burst of three frames every 100 ms: 30 Hz on average.
        for _ in range(3):
            msg = Image()
            t_ns = 1_000_000_000_000 + i * 33_333_333
            msg.header = Header(stamp=stamp(t_ns), frame_id="front")
            msg.height, msg.width, msg.encoding, msg.step = 480, 640, "bgr8", 640 * 3
            msg.data = frames[i % 4]
            pub.publish(msg)
            i += 1
        time.sleep(0.1)
        found = lost_warning()
    elapsed = time.monotonic() - start
    assert found is not None, (
        f"no loss reported within 5 s ({i} frames sent); node log:\n{node.log()[-3000:]}"
    )
    assert elapsed <= 5.0
    lost, received = int(found["lost_in_transport"]), int(found["received"])
    assert found["lost_source"] == "rmw event"
    assert lost + received <= i  # never more lost than sent
    wait_until(lambda: "lost in transport" in node.log(), 10, "the loss warning in the log")
    assert LOSS_HINT in node.log()
