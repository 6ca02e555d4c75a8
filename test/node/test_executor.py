"""The executor ``rvm_node`` spins on (issue 26): chosen by the ``executor`` parameter,
EventsExecutor where rclpy has it, and the node's outputs the same on each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rvm_ros.msg")

import rclpy
from node_harness import NodeProcess, RosPeer, image_msg, pick_domain_id, stamp_ns, wait_until
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rvm_ros.msg import FeatureMap
from sensor_msgs.msg import Image

from rvm_ros.node.executor import EXECUTOR_CHOICES, events_executor_available, make_executor

pytestmark = pytest.mark.ros
S = 1_000_000_000


def test_kilted_rclpy_has_the_events_executor() -> None:
    # The wheels this project installs (Kilted) ship it; a robot on Humble falls back.
    assert events_executor_available()


@pytest.fixture
def context() -> Iterator[Context]:
    ctx = Context()
    rclpy.init(context=ctx, domain_id=pick_domain_id(__name__))
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.mark.parametrize("choice", EXECUTOR_CHOICES)
def test_make_executor_names_what_it_made(choice: str, context: Context) -> None:
    executor, which = make_executor(choice, context)
    try:
        expected = "SingleThreadedExecutor" if choice == "single_threaded" else "EventsExecutor"
        assert type(executor).__name__ == expected
        assert which.startswith(expected) and choice in which
        if choice == "single_threaded":
            assert isinstance(executor, SingleThreadedExecutor)
    finally:
        executor.shutdown()


def test_unknown_executor_is_refused(context: Context) -> None:
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("multi_threaded", context)


@pytest.fixture(params=["events", "single_threaded"])
def node_and_peer(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[NodeProcess, RosPeer, str]]:
    domain = pick_domain_id(f"{__name__}:{request.param}")
    args = ["checkpoint:=random:tiny", "backend:=torch", "model_height:=32", "model_width:=32"]
    args += ["tracking:=false", "publish_debug_image:=false", f"executor:={request.param}"]
    args += ["input_reliability:=reliable", "input_depth:=10"]
    node = NodeProcess([x for a in args for x in ("-p", a)], domain, tmp_path / "rvm_node.log")
    peer = RosPeer(domain)
    try:
        node.wait_log("autostart: active")
        yield node, peer, request.param
    finally:
        peer.close()
        node.stop()


def test_the_node_runs_on_the_chosen_executor(
    node_and_peer: tuple[NodeProcess, RosPeer, str],
) -> None:
    node, peer, choice = node_and_peer
    name = "EventsExecutor" if choice == "events" else "SingleThreadedExecutor"
    assert f"spinning on {name}" in node.log()
    features = peer.collect(FeatureMap, "/rvm/front/features")
    pub = peer.publisher(Image, "/front/image_raw")
    peer.wait_matched(pub)
    wait_until(lambda: peer.node.count_publishers("/rvm/front/features") > 0, what="features")
    time.sleep(0.5)  # the node's publisher discovers our subscription too
    for i in range(5):
        msg = image_msg(100 * S + i * S // 30, height=32, width=32, seed=i)
        pub.publish(msg)
        out = features.wait_stamp(stamp_ns(msg.header))
        assert out.header.stamp == msg.header.stamp
    assert node.stop() == 0  # SIGINT ends the spin cleanly on either executor
