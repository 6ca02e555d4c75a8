"""Our interfaces survive a real DDS round trip between two processes.

The test process runs one rclpy node; ``test/ros_helpers/echo_node.py`` runs a second
node in a child process that republishes whatever it receives. FeatureMap (a 16x16 grid
of 384-channel float16 features plus the CLS token: 257x384 values) and TrackedPoints
messages go out over Fast DDS on loopback, come back, and every field is compared; the
payload bit for bit. Nothing in rclpy or DDS is mocked. Each module run uses its own
random ROS domain and topic prefix, so concurrent runs do not see each other.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run under scripts/ros-env")

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rvm_ros.msg import FeatureMap, TrackedPoint, TrackedPoints  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

pytestmark = pytest.mark.ros

TIMEOUT_S = 30.0
GRID = 16
CHANNELS = 384
QOS = QoSProfile(
    history=HistoryPolicy.KEEP_ALL,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
ECHO = Path(__file__).resolve().parent / "ros_helpers" / "echo_node.py"


class RoundTrip:
    """The test side: publishes on ``<prefix>/in/*``, collects ``<prefix>/out/*``."""

    def __init__(self, domain_id: int, prefix: str) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("rvm_ros_roundtrip_test", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list[Any]] = {"feature_map": [], "tracked_points": []}
        self.pubs: dict[str, Any] = {}
        self.subs: dict[str, Any] = {}
        for name, msg_type in (("feature_map", FeatureMap), ("tracked_points", TrackedPoints)):
            self.pubs[name] = self.node.create_publisher(msg_type, f"{prefix}/in/{name}", QOS)
            self.subs[name] = self.node.create_subscription(
                msg_type, f"{prefix}/out/{name}", self.received[name].append, QOS
            )

    def spin_until(self, done: Callable[[], bool], what: str, child: subprocess.Popen) -> None:
        """Spin until ``done()``; fail naming ``what`` after TIMEOUT_S or if the child died."""
        deadline = time.monotonic() + TIMEOUT_S
        while not done():
            if child.poll() is not None:
                out = child.stdout.read() if child.stdout else ""
                pytest.fail(f"echo node exited with {child.returncode} while {what}:\n{out}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {TIMEOUT_S:.0f} s {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope="module")
def roundtrip() -> Iterator[tuple[RoundTrip, subprocess.Popen]]:
    domain_id = random.randint(1, 200)
    prefix = f"/rvm_ros_rt_{os.getpid()}_{random.randint(0, 10**6)}"
    previous_domain = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen(
        [sys.executable, str(ECHO), "--prefix", prefix, "--lifetime", "300"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    rt = None
    try:
        rt = RoundTrip(domain_id, prefix)

        def discovered() -> bool:
            return all(
                rt.pubs[n].get_subscription_count() > 0 and rt.subs[n].get_publisher_count() > 0
                for n in rt.pubs
            )

        rt.spin_until(discovered, "waiting for the echo node to be discovered", child)
        yield rt, child
    finally:
        if rt is not None:
            rt.close()
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
        if previous_domain is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = previous_domain


def _header(sec: int, nanosec: int, frame_id: str) -> Header:
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def _feature_map(seed: int) -> tuple[FeatureMap, np.ndarray]:
    """A FeatureMap with every field set and its 257x384 float16 tokens (CLS first)."""
    rng = np.random.default_rng(seed)
    tokens = (rng.standard_normal((1 + GRID * GRID, CHANNELS)) * 3).astype(np.float16)
    tokens[0, :4] = [np.inf, -np.inf, 0.0, -0.0]  # special values survive too
    tokens[1, :2] = [np.float16(6.0e-8), np.float16(65504)]  # subnormal and max
    msg = FeatureMap()
    msg.header = _header(1_700_000_000 + seed, 123_456_789, f"camera_{seed}_optical")
    msg.camera = f"front_{seed}"
    msg.model_id = "S-3fa2c81d9e07"
    msg.grid_height = GRID
    msg.grid_width = GRID
    msg.channels = CHANNELS
    msg.dtype = FeatureMap.DTYPE_FLOAT16
    msg.cls_token = tokens[0].astype("<f2").tobytes()
    msg.features = tokens[1:].astype("<f2").tobytes()
    msg.frames_since_reset = 41 + seed
    msg.state_reset = bool(seed % 2)
    msg.reset_reason = "gap"
    msg.reset_count = 3
    msg.image_height = 480
    msg.image_width = 640
    msg.model_height = 256
    msg.model_width = 256
    msg.resize_mode = "letterbox"
    msg.scale_x = float(np.float32(0.4))
    msg.scale_y = float(np.float32(0.4))
    msg.offset_x = 0.0
    msg.offset_y = float(np.float32(32.0))
    msg.cell_size = 16
    msg.pool = 1
    return msg, tokens


def _tracked_points(seed: int, count: int) -> TrackedPoints:
    rng = np.random.default_rng(seed)
    msg = TrackedPoints()
    msg.header = _header(1_700_000_100 + seed, 999_999_999, "cam")
    msg.camera = "front"
    msg.seq = 4_000_000_000 + seed
    ids = np.sort(rng.choice(10_000, size=count, replace=False)).astype(np.int32)
    xs = rng.uniform(0, 640, count).astype(np.float32)
    ys = rng.uniform(0, 480, count).astype(np.float32)
    confs = rng.uniform(0, 1, count).astype(np.float32)
    msg.points = [
        TrackedPoint(id=int(i), x=float(x), y=float(y), visible=bool(c > 0.5), confidence=float(c))
        for i, x, y, c in zip(ids, xs, ys, confs, strict=True)
    ]
    msg.points[0].id = -(2**31)  # int32 extremes
    msg.points[-1].id = 2**31 - 1
    return msg


def _assert_same(sent: Any, got: Any, path: str) -> None:
    """Compare two messages field by field (recursively), naming the first difference."""
    if hasattr(sent, "get_fields_and_field_types"):
        assert type(got) is type(sent), f"{path}: type {type(got)} != {type(sent)}"
        for field in sent.get_fields_and_field_types():
            _assert_same(getattr(sent, field), getattr(got, field), f"{path}.{field}")
    elif isinstance(sent, (list, tuple)):
        assert len(got) == len(sent), f"{path}: length {len(got)} != {len(sent)}"
        for i, (a, b) in enumerate(zip(sent, got, strict=True)):
            _assert_same(a, b, f"{path}[{i}]")
    elif isinstance(sent, (bytes, bytearray)) or hasattr(sent, "tobytes"):
        assert bytes(got) == bytes(sent), f"{path}: payload differs"
    else:
        assert got == sent, f"{path}: {got!r} != {sent!r}"


def test_feature_map_float16_payload_round_trip(
    roundtrip: tuple[RoundTrip, subprocess.Popen],
) -> None:
    rt, child = roundtrip
    sent = [_feature_map(seed) for seed in range(3)]
    for msg, _ in sent:
        rt.pubs["feature_map"].publish(msg)
    got = rt.received["feature_map"]
    rt.spin_until(lambda: len(got) >= len(sent), "waiting for 3 FeatureMaps to come back", child)
    assert len(got) == len(sent)
    for (msg, tokens), back in zip(sent, got, strict=True):
        _assert_same(msg, back, "FeatureMap")
        assert len(back.features) == GRID * GRID * CHANNELS * 2
        grid = np.frombuffer(bytes(back.features), dtype="<f2").reshape(GRID, GRID, CHANNELS)
        cls = np.frombuffer(bytes(back.cls_token), dtype="<f2")
        restored = np.concatenate([cls[None], grid.reshape(GRID * GRID, CHANNELS)])
        assert restored.shape == (257, 384)
        np.testing.assert_array_equal(restored.view(np.uint16), tokens.view(np.uint16))
    # Arrival order is publication order (one reliable writer, one reader).
    assert [m.header.stamp.sec for m in got] == [m.header.stamp.sec for m, _ in sent]
    got.clear()


def test_tracked_points_round_trip(roundtrip: tuple[RoundTrip, subprocess.Popen]) -> None:
    rt, child = roundtrip
    sent = [_tracked_points(seed, count) for seed, count in ((0, 64), (1, 1))]
    sent.append(TrackedPoints(header=_header(5, 6, "cam"), camera="front", seq=2, points=[]))
    for msg in sent:
        rt.pubs["tracked_points"].publish(msg)
    got = rt.received["tracked_points"]
    rt.spin_until(lambda: len(got) >= len(sent), "waiting for 3 TrackedPoints to come back", child)
    assert len(got) == len(sent)
    for msg, back in zip(sent, got, strict=True):
        _assert_same(msg, back, "TrackedPoints")
    assert [len(m.points) for m in got] == [64, 1, 0]
    assert got[0].points[0].id == -(2**31)
    assert got[0].points[-1].id == 2**31 - 1
    got.clear()
