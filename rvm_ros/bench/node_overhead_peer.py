"""The camera / consumer side of the node-overhead benchmark, in a process of its own.

`run_peer` starts ``python -m rvm_ros.bench.node_overhead_peer ARGS_JSON``: it publishes
bgr8 frames at a fixed rate to every camera topic, subscribes to the node's features and
records ``time.perf_counter`` at each publish and receive (see `rvm_ros.bench.node_overhead`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from rvm_ros.stamps import NS_PER_SEC, header_ns, split_ns

if TYPE_CHECKING:
    from rclpy.node import Node
    from rclpy.publisher import Publisher
    from sensor_msgs.msg import Image

__all__ = ["FIRST_STAMP", "PeerArgs", "PeerRecords", "peer_main", "run_peer"]

#: Stamp of every camera's first frame (ns).
FIRST_STAMP = 1_000 * NS_PER_SEC


def run_peer(peer_args: PeerArgs, timeout_s: float) -> PeerRecords:
    """Run the camera/consumer process (`peer_main`) and return what it recorded."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "peer.json"
        args = json.dumps({**peer_args, "out": str(out_path)})
        env = dict(os.environ, ROS_DOMAIN_ID=str(peer_args["domain"]))
        peer = subprocess.run(
            [sys.executable, "-m", "rvm_ros.bench.node_overhead_peer", args],
            env=env,
            timeout=timeout_s,
            check=False,
        )
        if peer.returncode != 0 or not out_path.is_file():
            raise RuntimeError(f"the camera/consumer process failed (exit {peer.returncode})")
        records: PeerRecords = json.loads(out_path.read_text())
    return records


class PeerRecords(TypedDict):
    """What the camera/consumer process records (keys ``"camera:stamp"``).

    ``t_pub``: ``time.perf_counter()`` just before each ``publish()``; ``t_recv``: on
    receipt of each frame's features; ``measured``: the frames published after the warm-up.
    """

    t_pub: dict[str, float]
    t_recv: dict[str, float]
    measured: list[str]


class PeerArgs(TypedDict):
    """The camera/consumer process's arguments (JSON on its command line)."""

    domain: int
    rate_hz: float
    n_total: int
    n_warm: int
    width: int
    height: int
    cameras: list[str]
    out: str


def peer_main(args: PeerArgs) -> int:
    """The camera and the consumer, in their own process (no GIL shared with the node).

    Publishes ``n_total`` bgr8 frames at ``rate_hz`` to ``/<camera>/image_raw`` of every
    camera (one after the other each period) and records, per camera and stamp,
    ``time.perf_counter()`` (CLOCK_MONOTONIC: comparable across processes) just before
    ``publish()`` and on receipt of the matching ``/rvm/<camera>/features``.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init(domain_id=int(args["domain"]))
    peer = rclpy.create_node("rvm_overhead_bench_peer")
    cameras: list[str] = list(args.get("cameras", ["front"]))
    records: PeerRecords = {"t_pub": {}, "t_recv": {}, "measured": []}
    pubs = _peer_endpoints(peer, cameras, records["t_recv"])
    executor = SingleThreadedExecutor()
    executor.add_node(peer)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    if not _wait_matched(peer, pubs):
        print("overhead_bench peer: the node did not match within 30 s", file=sys.stderr)
        return 1
    time.sleep(0.5)
    _publish_frames(pubs, args, records)
    # Keep the writers until the features of every camera's last frame came back: a frame
    # whose UDP fragments were dropped is resent only after the writer's next heartbeat
    # (Fast DDS: every 3 s), and it is lost for good if the writer goes first.
    end = time.monotonic() + 15
    measured, t_recv = records["measured"], records["t_recv"]
    last = list(dict.fromkeys(k.split(":")[0] for k in measured))
    last = [next(k for k in reversed(measured) if k.startswith(f"{c}:")) for c in last]
    while any(k not in t_recv for k in last) and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.3)
    executor.shutdown()
    spin.join(10)
    Path(args["out"]).write_text(json.dumps(records))
    peer.destroy_node()
    rclpy.try_shutdown()
    return 0


def _peer_endpoints(
    peer: Node, cameras: list[str], t_recv: dict[str, float]
) -> dict[str, Publisher[Image]]:
    """Per camera an image publisher, and a features subscription that records arrivals."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from rvm_ros.msg import FeatureMap

    def on_features(cam: str, msg: FeatureMap) -> None:
        t = time.perf_counter()
        t_recv[f"{cam}:{header_ns(msg.header)}"] = t

    pubs = {}
    for cam in cameras:
        peer.create_subscription(
            FeatureMap, f"/rvm/{cam}/features", lambda m, c=cam: on_features(c, m), 50
        )
        pubs[cam] = peer.create_publisher(
            Image, f"/{cam}/image_raw", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        )
    return pubs


def _wait_matched(peer: Node, pubs: dict[str, Publisher[Image]]) -> bool:
    """Wait (up to 30 s) until the node subscribes every image topic and publishes every
    features topic."""
    deadline = time.monotonic() + 30
    while any(
        p.get_subscription_count() == 0 or peer.count_publishers(f"/rvm/{c}/features") == 0
        for c, p in pubs.items()
    ):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _publish_frames(
    pubs: dict[str, Publisher[Image]], args: PeerArgs, records: PeerRecords
) -> None:
    """Publish ``n_total`` frames per camera at ``rate_hz``, recording publish times."""
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    width, height = int(args["width"]), int(args["height"])
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes() for _ in range(8)]
    period = 1.0 / float(args["rate_hz"])
    t_pub, measured = records["t_pub"], records["measured"]
    t_start = time.perf_counter()
    for i in range(int(args["n_total"])):
        target = t_start + i * period
        now = time.perf_counter()
        if target > now:
            time.sleep(target - now)
        st = FIRST_STAMP + round(i * period * NS_PER_SEC)
        for cam, pub in pubs.items():
            msg = Image()
            msg.header = Header(frame_id=cam)
            msg.header.stamp.sec, msg.header.stamp.nanosec = split_ns(st)
            msg.height, msg.width, msg.encoding, msg.step = height, width, "bgr8", width * 3
            msg.data = frames[i % len(frames)]
            t_pub[f"{cam}:{st}"] = time.perf_counter()
            pub.publish(msg)
            if i >= int(args["n_warm"]):
                measured.append(f"{cam}:{st}")


if __name__ == "__main__":
    sys.exit(peer_main(json.loads(sys.argv[1])))
