"""rvm-ros play: a bag's messages over real DDS (rclpy + Fast DDS), received unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bag_helpers import FRAMES

from rvm_ros.bags import rosbag2 as bags

pytestmark = pytest.mark.ros

TOPIC = "/cameras/carphone_pristine/image_raw"
CLI = "import sys; from rvm_ros.cli import main; sys.exit(main())"


def _domain() -> int:
    return 100 + (os.getpid() % 100)


def test_play_publishes_every_message_in_order(
    bag_factory: Callable[..., Path], repo_root: Path
) -> None:
    rclpy = pytest.importorskip("rclpy")
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    bag = bag_factory("mcap", False)
    domain = _domain()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("play_test_listener", context=context)
    received: list[Any] = []
    qos = QoSProfile(
        history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE, depth=100
    )
    node.create_subscription(Image, TOPIC, received.append, qos)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "play", str(bag), "--rate", "4", "--wait-subscribers", "1"],
        env=env,
        cwd=repo_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (proc.poll() is None or len(received) < FRAMES):
            executor.spin_once(timeout_sec=0.05)
            if proc.poll() is not None and len(received) < FRAMES:
                # the player has exited; drain what is still in flight
                end = time.monotonic() + 3
                while time.monotonic() < end and len(received) < FRAMES:
                    executor.spin_once(timeout_sec=0.05)
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    assert proc.returncode == 0, err
    assert f"{TOPIC}: {FRAMES} messages" in out
    assert len(received) == FRAMES
    with bags.BagReader(bag) as reader:
        expected = [m.msg for m in reader.messages()]
    for got, want in zip(received, expected, strict=True):
        assert (got.header.stamp.sec, got.header.stamp.nanosec) == (
            want.header.stamp.sec,
            want.header.stamp.nanosec,
        )
        assert (got.height, got.width, got.encoding) == (want.height, want.width, want.encoding)
        assert bytes(got.data) == np.asarray(want.data).tobytes()


def test_play_unknown_topic(bag_factory: Callable[..., Path]) -> None:
    from rvm_ros.node.play import PlayError, play

    with pytest.raises(PlayError, match=r"/nope not in .* \(has: /cameras/"):
        play(bag_factory(), topics=["/nope"])


def test_play_missing_bag(tmp_path: Path) -> None:
    from rvm_ros.node.play import PlayError, play

    with pytest.raises(PlayError, match="does not exist"):
        play(tmp_path / "nope")


def test_play_loop_until_stopped(bag_factory: Callable[..., Path]) -> None:
    import threading

    from rvm_ros.node.play import play

    stop = threading.Event()
    seen: list[tuple[str, int]] = []

    def on_message(topic: str, index: int) -> None:
        seen.append((topic, index))
        if len(seen) == 2 * FRAMES + 3:
            stop.set()

    stats = play(bag_factory(), rate=0, loop=True, stop=stop, on_message=on_message)
    assert stats.interrupted
    assert stats.loops == 2
    assert stats.published == {TOPIC: 2 * FRAMES + 3}
    assert [i for _, i in seen] == list(range(2 * FRAMES + 3))
