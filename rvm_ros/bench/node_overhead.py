"""Node-overhead benchmark: ``python -m rvm_ros.bench.node_overhead [--overload] [--json F]``.

Method (documented in docs/BENCHMARKS.md):

* The real `RvmNode` runs in this process with its executor thread and its inference
  thread, exactly as ``rvm_node`` runs it. A second process (the camera and the consumer)
  publishes ``sensor_msgs/Image`` bgr8 frames at a fixed rate over Fast DDS and subscribes
  to ``/rvm/front/features``; both processes stamp events with ``time.perf_counter``
  (CLOCK_MONOTONIC, comparable across processes on Linux).
* Per frame: ``latency = t_receive - t_publish`` (``time.perf_counter`` around
  ``publish()`` and in the subscriber callback), and the model step time is the
  ``FrameResult.step_ms`` of that very frame (the wall time of ``encoder.step``, captured
  by wrapping the node's result publishing). ``overhead = latency - step``: decoding,
  waiting in the slot, preprocessing, pooling, tracking, message filling and DDS transport
  both ways.
* The overhead is split per frame into publish -> step start (DDS in, deserialisation,
  decoding, the slot and batching window), Processor work other than ``encoder.step``
  (preprocessing, pooling, tracking) and step end -> receive (message filling, DDS out).
* ``--overload``: a model slower than the camera. Reports resident memory over the run,
  whether processed stamps only ever increase (a stale frame is never processed after a
  newer one), and whether ``dropped == received - processed - rejected`` (every frame not
  processed is counted as a drop).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "run"]

S = 1_000_000_000


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def run(
    checkpoint: str = "random:tiny",
    backend: str = "torch",
    rate_hz: float = 30.0,
    seconds: float = 20.0,
    warmup_s: float = 2.0,
    width: int = 640,
    height: int = 480,
    model_size: int = 256,
    tracking: bool = True,
    input_reliability: str = "reliable",
) -> dict[str, Any]:
    """Run the benchmark and return its figures (milliseconds, MiB, counts).

    Args:
        checkpoint: Model of the node (``random:tiny`` is the CI-size model).
        backend: Node backend.
        rate_hz: Camera rate.
        seconds: Measured duration (after warm-up).
        warmup_s: Frames published during this first period are not measured.
        width: Image width (bgr8).
        height: Image height.
        model_size: Network input side (square).
        tracking: Node tracks a 4x4 grid of points (as a robot would).
        input_reliability: The node's ``input_reliability`` (the camera publishes reliable).
    """
    import rclpy
    import rclpy.lifecycle
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from rvm_ros.node.node import RvmNode

    domain = random.Random(os.getpid() ^ time.time_ns()).randint(1, 200)
    node_ctx = Context()
    rclpy.init(context=node_ctx, domain_id=domain)
    overrides = [
        Parameter("checkpoint", value=checkpoint),
        Parameter("backend", value=backend),
        Parameter("model_height", value=model_size),
        Parameter("model_width", value=model_size),
        Parameter("tracking", value=tracking),
        Parameter("track_grid", value=4 if tracking else 0),
        Parameter("reset_on_gap_s", value=5.0),
        Parameter("publish_debug_image", value=False),
        Parameter("input_reliability", value=input_reliability),
    ]
    node = RvmNode(context=node_ctx, parameter_overrides=overrides)
    # Per frame: when the node's subscription callback started (wrapped before on_configure
    # binds it to the subscriptions).
    t_cb: dict[int, float] = {}
    original_on_image = node._on_image

    def on_image(cam: str, msg: Any) -> None:
        t_cb[int(msg.header.stamp.sec) * S + int(msg.header.stamp.nanosec)] = time.perf_counter()
        original_on_image(cam, msg)

    node._on_image = on_image  # type: ignore[method-assign]
    node_exec = SingleThreadedExecutor(context=node_ctx)
    node_exec.add_node(node)
    ok = rclpy.lifecycle.TransitionCallbackReturn.SUCCESS
    if node.trigger_configure() != ok or node.trigger_activate() != ok:
        raise RuntimeError("the node did not activate (see its log)")

    step_ms: dict[int, float] = {}
    processed_order: list[int] = []
    original = node._publish_result

    def publish_result(res: Any, frame: Any) -> None:
        if hasattr(res, "step_ms"):
            step_ms[res.stamp_ns] = res.step_ms
            processed_order.append(res.stamp_ns)
        original(res, frame)

    node._publish_result = publish_result  # type: ignore[method-assign]
    # Per frame: when its batch entered and left Processor.process.
    t_proc: dict[int, tuple[float, float]] = {}
    processor = node._processor
    original_process = processor.process

    def timed_process(batch: Any) -> Any:
        t0 = time.perf_counter()
        out = original_process(batch)
        t1 = time.perf_counter()
        for f in batch:
            t_proc[f.stamp_ns] = (t0, t1)
        return out

    processor.process = timed_process

    spin = threading.Thread(target=node_exec.spin, daemon=True)
    spin.start()
    rss: list[tuple[float, float]] = []
    done = threading.Event()

    def sample_rss() -> None:
        t0 = time.perf_counter()
        while not done.wait(1.0):
            rss.append((time.perf_counter() - t0, _rss_mib()))

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "peer.json"
        peer_args = {
            "domain": domain,
            "rate_hz": rate_hz,
            "n_total": int((warmup_s + seconds) * rate_hz),
            "n_warm": int(warmup_s * rate_hz),
            "width": width,
            "height": height,
            "out": str(out_path),
        }
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
        peer = subprocess.run(
            [sys.executable, "-m", "rvm_ros.bench.node_overhead", "--peer", json.dumps(peer_args)],
            env=env,
            timeout=warmup_s + seconds + 120,
            check=False,
        )
        if peer.returncode != 0 or not out_path.is_file():
            raise RuntimeError(f"the camera/consumer process failed (exit {peer.returncode})")
        peer_out = json.loads(out_path.read_text())
    done.set()
    time.sleep(0.3)
    t_pub = {int(k): v for k, v in peer_out["t_pub"].items()}
    t_recv = {int(k): v for k, v in peer_out["t_recv"].items()}
    measured = [int(x) for x in peer_out["measured"]]
    stats = node.stats.snapshot()["cameras"]["front"] if node.stats else None
    diag_latency = node.stats.snapshot()["latency"] if node.stats else []

    latency, overhead, steps = [], [], []
    dds_in, node_in, inside, after = [], [], [], []
    for st in measured:
        if st in t_recv and st in step_ms and st in t_proc and st in t_cb:
            lat = (t_recv[st] - t_pub[st]) * 1e3
            latency.append(lat)
            steps.append(step_ms[st])
            overhead.append(lat - step_ms[st])
            p0, p1 = t_proc[st]
            dds_in.append((t_cb[st] - t_pub[st]) * 1e3)
            node_in.append((p0 - t_cb[st]) * 1e3)
            inside.append((p1 - p0) * 1e3 - step_ms[st])
            after.append((t_recv[st] - p1) * 1e3)
    monotonic = all(b > a for a, b in itertools.pairwise(processed_order))
    result: dict[str, Any] = {
        "checkpoint": checkpoint,
        "backend": backend,
        "runtime": node._runtime_text,
        "image": f"{width}x{height} bgr8",
        "model_input": f"{model_size}x{model_size}",
        "rate_hz": rate_hz,
        "seconds": seconds,
        "input_reliability": input_reliability,
        "published": len(measured),
        "received_outputs": len(latency),
        "overhead_ms_p50": _pct(overhead, 50),
        "overhead_ms_p99": _pct(overhead, 99),
        "latency_ms_p50": _pct(latency, 50),
        "latency_ms_p99": _pct(latency, 99),
        "step_ms_p50": _pct(steps, 50),
        "step_ms_p99": _pct(steps, 99),
        "process_call_ms_p50": _pct([x * 1e3 for x in diag_latency], 50),
        # Overhead split: publish -> node callback (DDS in: 640x480x3 bytes), callback ->
        # step start (deserialised message to decode, slot, wake-up, batching window),
        # Processor work other than encoder.step (preprocess, pooling, tracking),
        # step end -> receive (message filling, publish, DDS out).
        "dds_in_ms_p50": _pct(dds_in, 50),
        "dds_in_ms_p99": _pct(dds_in, 99),
        "callback_to_step_ms_p50": _pct(node_in, 50),
        "callback_to_step_ms_p99": _pct(node_in, 99),
        "processor_non_model_ms_p50": _pct(inside, 50),
        "processor_non_model_ms_p99": _pct(inside, 99),
        "after_process_ms_p50": _pct(after, 50),
        "after_process_ms_p99": _pct(after, 99),
        "processed_stamps_increase": monotonic,
        "lost_before_node": len(t_pub) - (stats.received if stats else 0),
        "rss_mib_first": rss[0][1] if rss else float("nan"),
        "rss_mib_after_warmup": next((r for t, r in rss if t >= warmup_s + 1.0), float("nan")),
        "rss_mib_last": rss[-1][1] if rss else float("nan"),
        "rss_mib_max": max((r for _, r in rss), default=float("nan")),
        # Resident memory every 10 s: (seconds since the first frame, MiB).
        "rss_series": [(round(t, 1), round(r, 1)) for t, r in rss[:: max(1, 10)]],
        "cpu_count": os.cpu_count(),
        "load_avg_1min_at_end": os.getloadavg()[0],
    }
    if stats is not None:
        rejected = sum(stats.rejected.values())
        skipped = sum(stats.skipped.values())
        result.update(
            node_received=stats.received,
            node_processed=stats.processed,
            node_dropped=stats.dropped,
            node_rejected=rejected,
            node_skipped=skipped,
            node_skipped_by_reason=dict(stats.skipped),
            node_rejected_by_cause=dict(stats.rejected),
            node_ignored_inactive=stats.ignored,
            drops_equal_not_processed=(
                stats.dropped
                == stats.received - stats.processed - rejected - skipped - stats.ignored
            ),
        )
    node.trigger_deactivate()
    node_exec.shutdown()
    spin.join(10)
    node.destroy_node()
    rclpy.try_shutdown(context=node_ctx)
    return result


def _peer(args: dict[str, Any]) -> int:
    """The camera and the consumer, in their own process (no GIL shared with the node).

    Publishes ``n_total`` bgr8 frames at ``rate_hz`` to ``/front/image_raw`` and records,
    per stamp, ``time.perf_counter()`` (CLOCK_MONOTONIC: comparable across processes)
    just before ``publish()`` and on receipt of the matching ``/rvm/front/features``.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from rvm_ros.msg import FeatureMap

    rclpy.init(domain_id=int(args["domain"]))
    peer = rclpy.create_node("rvm_overhead_bench_peer")
    t_pub: dict[int, float] = {}
    t_recv: dict[int, float] = {}

    def on_features(msg: FeatureMap) -> None:
        t = time.perf_counter()
        t_recv[int(msg.header.stamp.sec) * S + int(msg.header.stamp.nanosec)] = t

    peer.create_subscription(FeatureMap, "/rvm/front/features", on_features, 50)
    pub = peer.create_publisher(
        Image, "/front/image_raw", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    )
    executor = SingleThreadedExecutor()
    executor.add_node(peer)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 or peer.count_publishers("/rvm/front/features") == 0:
        if time.monotonic() > deadline:
            print("overhead_bench peer: the node did not match within 30 s", file=sys.stderr)
            return 1
        time.sleep(0.05)
    time.sleep(0.5)
    width, height = int(args["width"]), int(args["height"])
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes() for _ in range(8)]
    period = 1.0 / float(args["rate_hz"])
    measured: list[int] = []
    base = 1_000 * S
    t_start = time.perf_counter()
    for i in range(int(args["n_total"])):
        target = t_start + i * period
        now = time.perf_counter()
        if target > now:
            time.sleep(target - now)
        st = base + round(i * period * S)
        msg = Image()
        msg.header = Header(frame_id="front")
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(st, S)
        msg.height, msg.width, msg.encoding, msg.step = height, width, "bgr8", width * 3
        msg.data = frames[i % len(frames)]
        t_pub[st] = time.perf_counter()
        pub.publish(msg)
        if i >= int(args["n_warm"]):
            measured.append(st)
    end = time.monotonic() + 10  # let the last frames through
    while measured and measured[-1] not in t_recv and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.3)
    executor.shutdown()
    spin.join(10)
    Path(args["out"]).write_text(
        json.dumps(
            {
                "t_pub": {str(k): v for k, v in t_pub.items()},
                "t_recv": {str(k): v for k, v in t_recv.items()},
                "measured": measured,
            }
        )
    )
    peer.destroy_node()
    rclpy.try_shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; prints the figures (and writes ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint", default=None, help="default random:tiny (random:S with --overload)"
    )
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--model-size", type=int, default=256)
    parser.add_argument("--no-tracking", action="store_true")
    parser.add_argument(
        "--input-reliability", default="reliable", choices=("reliable", "best_effort")
    )
    parser.add_argument("--overload", action="store_true", help="a model slower than the camera")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--peer", default=None, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    if args.peer is not None:
        return _peer(json.loads(args.peer))
    checkpoint = args.checkpoint or ("random:S" if args.overload else "random:tiny")
    seconds = args.seconds if args.seconds is not None else (60.0 if args.overload else 20.0)
    res = run(
        checkpoint=checkpoint,
        backend=args.backend,
        rate_hz=args.rate,
        seconds=seconds,
        width=args.width,
        height=args.height,
        model_size=args.model_size,
        tracking=not args.no_tracking,
        input_reliability=args.input_reliability,
    )
    for key, value in res.items():
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
