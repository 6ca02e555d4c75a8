"""Test harness for the node: the node in its own process, a real rclpy peer in this one.

`NodeProcess` starts ``scripts/ros-env rvm_node --ros-args ...`` on a private ROS domain
(so concurrent test runs on the machine do not talk to each other) and always kills it.
`RosPeer` is an rclpy node with its own context, spun in a background thread, with
helpers to publish images, collect messages and call services with timeouts.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60.0
ATTEMPT_S = 5.0  # a repeatable request is sent again after this long (see RosPeer.call)


def pick_domain_id(seed: str) -> int:
    """A ROS domain id in 1..200 from the pid and a per-module seed (no cross-talk)."""
    return random.Random(f"{os.getpid()}:{seed}:{time.time_ns()}").randint(1, 200)


def wait_until(pred: Callable[[], Any], timeout: float = TIMEOUT_S, what: str = "") -> Any:
    """Poll ``pred`` until it returns something truthy; fail with ``what`` on timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or pred}")


class NodeProcess:
    """``rvm_node`` in its own process, logging to a file.

    Args:
        ros_args: Arguments after ``--ros-args``.
        domain_id: ``ROS_DOMAIN_ID`` of the process.
        log_path: Where stdout and stderr go.
    """

    def __init__(self, ros_args: list[str], domain_id: int, log_path: Path) -> None:
        self.log_path = log_path
        env = dict(os.environ)
        env["ROS_DOMAIN_ID"] = str(domain_id)
        env["PYTHONUNBUFFERED"] = "1"
        env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(REPO / "scripts" / "ros-env"), "rvm_node", "--ros-args", *ros_args],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.poll() is None

    def wait_log(self, text: str, timeout: float = TIMEOUT_S) -> None:
        """Wait until ``text`` appears in the log (fails early if the process exits)."""

        def seen() -> bool:
            if text in self.log():
                return True
            if not self.alive():
                raise AssertionError(f"rvm_node exited ({self.proc.returncode}):\n{self.log()}")
            return False

        wait_until(seen, timeout, f"{text!r} in the node log")

    def stop(self) -> int | None:
        """SIGINT, then SIGKILL of the process group after 15 s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def stamp(t_ns: int) -> Time:
    """``builtin_interfaces/Time`` of ``t_ns`` nanoseconds."""
    return Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)


def stamp_ns(header: Header) -> int:
    """Nanoseconds of a header stamp."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def image_msg(
    t_ns: int,
    frame_id: str = "cam",
    height: int = 48,
    width: int = 64,
    encoding: str = "bgr8",
    seed: int = 0,
) -> Image:
    """A random ``sensor_msgs/Image`` (8-bit encodings and mono16) with the given stamp."""
    channels = {"bgr8": 3, "rgb8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 1}[encoding]
    dtype = np.dtype("<u2") if encoding == "mono16" else np.dtype(np.uint8)
    px = np.random.default_rng(seed).integers(
        0, np.iinfo(dtype).max + 1, (height, width, channels), dtype=dtype
    )
    msg = Image()
    msg.header = Header(stamp=stamp(t_ns), frame_id=frame_id)
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.step = width * channels * dtype.itemsize
    msg.data = px.tobytes()
    return msg


def float_image_msg(t_ns: int, value: float, height: int = 48, width: int = 64) -> Image:
    """A ``32FC3`` image filled with ``value`` (NaN makes a non-finite frame)."""
    px = np.full((height, width, 3), value, dtype=np.float32)
    msg = Image()
    msg.header = Header(stamp=stamp(t_ns), frame_id="cam")
    msg.height, msg.width, msg.encoding = height, width, "32FC3"
    msg.step = width * 12
    msg.data = px.tobytes()
    return msg


def jpeg_msg(t_ns: int, data: bytes) -> CompressedImage:
    """A ``sensor_msgs/CompressedImage`` in JPEG format holding ``data``."""
    msg = CompressedImage()
    msg.header = Header(stamp=stamp(t_ns), frame_id="cam")
    msg.format = "jpeg"
    msg.data = data
    return msg


def qos(reliable: bool = True, depth: int = 10, transient: bool = False) -> QoSProfile:
    """A keep-last profile."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else DurabilityPolicy.VOLATILE,
    )


class Collector:
    """Messages received on one topic (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._msgs: list[Any] = []

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self._msgs.append(msg)

    @property
    def msgs(self) -> list[Any]:
        """A copy of the messages so far."""
        with self._lock:
            return list(self._msgs)

    def by_stamp(self, t_ns: int) -> list[Any]:
        """Messages whose header stamp is ``t_ns``."""
        return [m for m in self.msgs if stamp_ns(m.header) == t_ns]

    def wait_stamp(self, t_ns: int, timeout: float = TIMEOUT_S) -> Any:
        """Wait for a message with header stamp ``t_ns``; returns it."""
        found = wait_until(lambda: self.by_stamp(t_ns), timeout, f"a message stamped {t_ns}")
        return found[0]


class RosPeer:
    """An rclpy node in its own context on ``domain_id``, spun in a background thread."""

    def __init__(self, domain_id: int, name: str = "rvm_test_peer") -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._clients: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        with contextlib.suppress(Exception):  # the context is shut down in close()
            self.executor.spin()

    def publisher(self, msg_type: Any, topic: str, profile: QoSProfile | None = None) -> Any:
        """A publisher (reliable, depth 10 by default)."""
        return self.node.create_publisher(msg_type, topic, profile or qos())

    def collect(self, msg_type: Any, topic: str, profile: QoSProfile | None = None) -> Collector:
        """Subscribe and collect every message."""
        col = Collector()
        self.node.create_subscription(msg_type, topic, col, profile or qos())
        return col

    def wait_matched(self, pub: Any, timeout: float = TIMEOUT_S) -> None:
        """Wait until ``pub`` has a subscriber."""
        wait_until(lambda: pub.get_subscription_count() > 0, timeout, f"{pub.topic_name} matched")

    def call(
        self,
        srv_type: Any,
        name: str,
        request: Any,
        timeout: float = TIMEOUT_S,
        *,
        repeat: bool = True,
    ) -> Any:
        """Call a service and return the response.

        Fast DDS drops a response when the server has not yet matched the client's response
        reader ("failed to send response (timeout)": rmw waits only the writer's
        max_blocking_time, 100 ms, for the match, and ``wait_for_service`` checks the
        client's side only). So one client per service is kept for the peer's life, and a
        request that is safe to repeat (``repeat``) is sent again every `ATTEMPT_S` until
        one is answered. A request that is not (a lifecycle transition, an append of query
        points) must follow an answered request to the same service on the same server.
        """
        client = self._client(srv_type, name, timeout)
        end = time.monotonic() + timeout
        while True:
            future = client.call_async(request)
            attempt = timeout if not repeat else min(ATTEMPT_S, max(end - time.monotonic(), 0))
            try:
                wait_until(future.done, attempt, f"the response of {name}")
                return future.result()
            except AssertionError:
                client.remove_pending_request(future)
                if not repeat or time.monotonic() >= end:
                    raise AssertionError(
                        f"timed out after {timeout:.0f} s waiting for the response of {name}"
                    ) from None

    def _client(self, srv_type: Any, name: str, timeout: float) -> Any:
        """The kept client of ``name``, created and waited for on first use."""
        if name not in self._clients:
            client = self.node.create_client(srv_type, name)
            if not client.wait_for_service(timeout_sec=timeout):
                self.node.destroy_client(client)
                raise AssertionError(f"service {name} not available within {timeout:.0f} s")
            self._clients[name] = client
        return self._clients[name]

    def close(self) -> None:
        """Shut the context down and join the spin thread."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(5)


def diag_values(msg: Any, name_suffix: str) -> dict[str, str] | None:
    """Key/values of the status whose name ends with ``name_suffix`` in a DiagnosticArray."""
    for st in msg.status:
        if st.name.endswith(name_suffix):
            return {kv.key: kv.value for kv in st.values}
    return None
