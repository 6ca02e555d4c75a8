"""Every frame a camera published is counted in exactly one place (issue 26), over real DDS.

An in-process node reads its camera through a depth-1 reliable subscription. While its
executor does not spin, a burst of frames overwrites one another in the DDS reader queue:
neither the message-lost event (nothing was lost in transport) nor the receive counter sees
them. The node counts them from the gap in the camera's stamp sequence as
``overwritten_in_queue``, and the camera's published frames add up exactly.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rvm_ros.msg")

import rclpy
from node_harness import image_msg, pick_domain_id, qos
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from rvm_ros.node.diagnostics import CameraCounters, summarize
from rvm_ros.node.node import RvmNode

pytestmark = pytest.mark.ros

PERIOD_NS = 33_000_000  # a 30 Hz camera
T0 = 1_700_000_000 * 1_000_000_000


def _counters(node: RvmNode) -> CameraCounters:
    assert node.stats is not None
    return node.stats.snapshot()["cameras"]["front"]


def _spin_until(executor: SingleThreadedExecutor, done, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, "timed out"
        executor.spin_once(timeout_sec=0.05)


def test_frames_overwritten_in_the_queue_are_counted_and_add_up(
    capfd: pytest.CaptureFixture[str],
) -> None:
    ctx = Context()
    rclpy.init(context=ctx, domain_id=pick_domain_id(__name__))
    overrides = [
        Parameter("checkpoint", value="random:tiny"),
        Parameter("backend", value="torch"),
        Parameter("model_height", value=32),
        Parameter("model_width", value=32),
        Parameter("tracking", value=False),
        Parameter("publish_debug_image", value=False),
        Parameter("input_reliability", value="reliable"),
        Parameter("input_depth", value=1),
        Parameter("autostart", value=False),
    ]
    node = RvmNode(context=ctx, parameter_overrides=overrides)
    peer = Node("camera_peer", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        node.trigger_configure()
        node.trigger_activate()
        pub = peer.create_publisher(Image, "/front/image_raw", qos(reliable=True, depth=100))
        _spin_until(executor, lambda: pub.get_subscription_count() > 0)
        sent = 0

        def send(spin: bool) -> None:
            nonlocal sent
            received = _counters(node).received
            pub.publish(image_msg(T0 + sent * PERIOD_NS, height=32, width=32, seed=sent))
            sent += 1
            if spin:
                _spin_until(executor, lambda: _counters(node).received > received)

        for _ in range(20):  # one by one: the camera's period is learnt
            send(spin=True)
        for _ in range(15):  # a burst while the executor is busy elsewhere
            send(spin=False)
        time.sleep(0.5)  # every burst frame reaches the reader queue (depth 1)
        executor.spin_once(timeout_sec=0.5)
        for _ in range(10):
            send(spin=True)
        c = _counters(node)
        # Every frame published is counted once: received, lost in transport, or overwritten.
        assert c.received + c.lost + c.overwritten == sent == c.published
        assert c.lost == 0  # reliable on one host: nothing lost in transport
        assert c.overwritten >= 10  # most of the burst never reached the callback
        assert c.received < sent
        summary = summarize(node.stats.snapshot(), None, 1.0, "/rvm", "torch", True)  # type: ignore[union-attr]
        values = dict(summary[1].values)
        assert values["overwritten_in_queue"] == str(c.overwritten)
        assert values["published_estimate"] == str(sent)
        err = capfd.readouterr().err
        assert "overwritten in the subscription queue" in err and "input_depth" in err
    finally:
        if node.lifecycle_state in ("inactive", "active"):
            node.trigger_shutdown()  # stops the inference thread before the node goes
        node.release()
        executor.shutdown()
        peer.destroy_node()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
