"""Echo node for the DDS round-trip test (runs in its own process).

Subscribes to ``<prefix>/in/feature_map`` (rvm_ros/FeatureMap) and
``<prefix>/in/tracked_points`` (rvm_ros/TrackedPoints) and republishes every message,
unchanged, on ``<prefix>/out/feature_map`` and ``<prefix>/out/tracked_points``.
Messages are held until the output topic has a subscriber, so nothing is dropped while
discovery is still going on. Reliable, keep-all QoS both ways. Prints ``ready`` once its
endpoints exist, and exits by itself after ``--lifetime`` seconds (so a crashed test run
cannot leave it behind). The ROS domain comes from ``ROS_DOMAIN_ID`` in the environment.

Usage: python test/ros_helpers/echo_node.py --prefix /rt_1234 [--lifetime 120]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rvm_ros.msg import FeatureMap, TrackedPoints

QOS = QoSProfile(
    history=HistoryPolicy.KEEP_ALL,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


class Echo(Node):
    """Republishes what it receives once someone listens on the output topic."""

    def __init__(self, prefix: str) -> None:
        super().__init__("rvm_ros_echo")
        self._pending: list[tuple[Any, Any]] = []
        for name, msg_type in (("feature_map", FeatureMap), ("tracked_points", TrackedPoints)):
            pub = self.create_publisher(msg_type, f"{prefix}/out/{name}", QOS)
            self.create_subscription(
                msg_type, f"{prefix}/in/{name}", lambda msg, pub=pub: self._received(msg, pub), QOS
            )
        self.create_timer(0.02, self._flush)

    def _received(self, msg: Any, pub: Any) -> None:
        self._pending.append((msg, pub))
        self._flush()

    def _flush(self) -> None:
        while self._pending and self._pending[0][1].get_subscription_count() > 0:
            msg, pub = self._pending.pop(0)
            pub.publish(msg)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", required=True, help="topic namespace, e.g. /rt_1234")
    parser.add_argument("--lifetime", type=float, default=120.0, help="exit after this many s")
    args = parser.parse_args()
    rclpy.init()
    node = Echo(args.prefix)
    print("ready", flush=True)
    deadline = time.monotonic() + args.lifetime
    try:
        while rclpy.ok() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
