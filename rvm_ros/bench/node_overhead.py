"""Node-overhead benchmark: ``python -m rvm_ros.bench.node_overhead [--overload] [--json F]``.

``--cameras N`` publishes N cameras (each at ``--rate``). ``--variant`` picks the node's
hot-path settings: ``ordinary`` (``raw_subscriptions:=false retain_large_buffers:=false``,
the node before issue 17), ``ordinary+retain``, ``raw-only`` (serialized subscriptions,
default malloc) and ``raw`` (both on, the default). ``--compare R`` runs R rounds of the
``--variants`` (order rotating each round), each run in its own process (the malloc
setting is process-wide), and reports medians and the median per-round ratio of each
variant to ``ordinary``.

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
* The node's own CPU time per frame comes from per-thread CPU clocks over the measured
  window: the executor thread (subscription callbacks: deserialisation or CDR parsing,
  decoding, the slot), the inference thread outside ``encoder.step`` (preprocessing,
  pooling, message filling, publishing) and Fast DDS's own threads (``dds.*``: transport
  receive and send), divided by the frames the node received. The model's threads (the
  inference thread inside ``encoder.step``, torch's pool) are counted apart.
* ``--overload``: a model slower than the camera. Reports resident memory over the run,
  whether processed stamps only ever increase (a stale frame is never processed after a
  newer one), and whether ``dropped == received - processed - rejected`` (every frame not
  processed is counted as a drop).

This module is the node side (`run`), the camera/consumer process and the command line;
`node_overhead_threads` reads the per-thread clocks, `node_overhead_figures` computes the
figures from a run's records and `node_overhead_compare` runs ``--compare``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rvm_ros.bench.node_overhead_compare import VARIANTS, argv_common, compare
from rvm_ros.bench.node_overhead_figures import (
    counter_figures,
    cpu_figures,
    latency_figures,
    rss_figures,
    stamps_increase,
)
from rvm_ros.bench.node_overhead_threads import rss_mib, thread_cpu_s, thread_stats

__all__ = ["main", "run"]

S = 1_000_000_000

CAMERA_NAMES = ("front", "front_left", "front_right", "rear", "rear_left", "rear_right")


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
    cameras: int = 1,
    raw_subscriptions: bool = True,
    retain_large_buffers: bool = True,
    tracking_thread: bool = True,
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
        cameras: Number of cameras (1 to 6), each publishing at ``rate_hz``.
        raw_subscriptions: The node's ``raw_subscriptions`` (False: rclpy's ordinary path).
        retain_large_buffers: The node's ``retain_large_buffers``.
        tracking_thread: The node's ``tracking_thread`` (False: tracking on the inference
            thread, before the features are published).
    """
    if not 1 <= cameras <= len(CAMERA_NAMES):
        raise ValueError(f"cameras must be 1..{len(CAMERA_NAMES)}, got {cameras}")
    names = list(CAMERA_NAMES[:cameras])
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
        Parameter("cameras", value=names),
        Parameter("raw_subscriptions", value=raw_subscriptions),
        Parameter("retain_large_buffers", value=retain_large_buffers),
        Parameter("tracking_thread", value=tracking_thread),
    ]
    node = RvmNode(context=node_ctx, parameter_overrides=overrides)
    # Per frame: when the node's subscription callback started (wrapped before on_configure
    # binds it to the subscriptions). The first measured frame starts the CPU window.
    t_cb: dict[tuple[str, int], float] = {}
    original_on_image = node._on_image
    first_measured = 1_000 * S + round(int(warmup_s * rate_hz) / rate_hz * S)
    window: dict[str, Any] = {}
    stamp_le = struct.Struct("<iI")

    def on_image(cam: str, msg: Any) -> None:
        t = time.perf_counter()
        if isinstance(msg, bytes):  # raw subscription: the stamp from the CDR (the peer's LE)
            sec, nsec = stamp_le.unpack_from(msg, 4)
        else:
            sec, nsec = msg.header.stamp.sec, msg.header.stamp.nanosec
        st = int(sec) * S + int(nsec)
        t_cb[(cam, st)] = t
        if st >= first_measured and "start" not in window:
            window["received_start"] = len(t_cb) - 1
            window["threads"] = thread_cpu_s()
            window["faults"] = {t: f for t, (_, _, f) in thread_stats().items()}
            window["exec"] = time.clock_gettime(executor_clock[0])
            window["worker"] = time.clock_gettime(worker_clock[0])
            window["in_step"] = in_step[0]
            window["start"] = t
        original_on_image(cam, msg)

    node._on_image = on_image  # type: ignore[method-assign]
    executor_clock: list[int] = [0]
    worker_clock: list[int] = [0]
    in_step = [0.0]  # inference-thread CPU seconds inside encoder.step
    node_exec = SingleThreadedExecutor(context=node_ctx)
    node_exec.add_node(node)
    ok = rclpy.lifecycle.TransitionCallbackReturn.SUCCESS
    if node.trigger_configure() != ok or node.trigger_activate() != ok:
        raise RuntimeError("the node did not activate (see its log)")

    step_ms: dict[tuple[str, int], float] = {}
    processed_order: dict[str, list[int]] = {c: [] for c in names}
    outputs = node._outputs
    assert outputs is not None
    original = outputs.publish_result

    def publish_result(res: Any, frame: Any) -> None:
        if hasattr(res, "step_ms"):
            step_ms[(res.camera, res.stamp_ns)] = res.step_ms
            processed_order[res.camera].append(res.stamp_ns)
        original(res, frame)

    outputs.publish_result = publish_result  # type: ignore[method-assign]
    # Per frame: when its batch entered and left Processor.process.
    t_proc: dict[tuple[str, int], tuple[float, float]] = {}
    processor = node._processor
    original_process = processor.process
    encoder = processor.encoder
    original_step = encoder.step

    def timed_process(batch: Any) -> Any:
        t0 = time.perf_counter()
        out = original_process(batch)
        t1 = time.perf_counter()
        for f in batch:
            t_proc[(f.camera, f.stamp_ns)] = (t0, t1)
        return out

    def cpu_timed_step(*args: Any, **kwargs: Any) -> Any:
        c0 = time.thread_time()
        try:
            return original_step(*args, **kwargs)
        finally:
            in_step[0] += time.thread_time() - c0

    processor.process = timed_process
    encoder.step = cpu_timed_step
    assert node._worker is not None and node._worker.ident is not None
    worker_clock[0] = time.pthread_getcpuclockid(node._worker.ident)

    spin = threading.Thread(target=node_exec.spin, daemon=True)
    spin.start()
    while spin.ident is None:
        time.sleep(0.001)
    executor_clock[0] = time.pthread_getcpuclockid(spin.ident)
    worker_tid = node._worker.native_id
    spin_tid = spin.native_id
    tracker_thread = node._outputs.tracking_thread if node._outputs is not None else None
    tracking_tid = tracker_thread.native_id if tracker_thread is not None else None
    rss: list[tuple[float, float]] = []
    done = threading.Event()

    def sample_rss() -> None:
        t0 = time.perf_counter()
        while not done.wait(1.0):
            rss.append((time.perf_counter() - t0, rss_mib()))

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
            "cameras": names,
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
    # End of the CPU window (the peer has sent everything and waited for the outputs).
    cpu_end: dict[str, Any] = {
        "threads": thread_cpu_s(),
        "faults": {t: f for t, (_, _, f) in thread_stats().items()},
        "exec": time.clock_gettime(executor_clock[0]),
        "worker": time.clock_gettime(worker_clock[0]),
        "in_step": in_step[0],
        "received": len(t_cb),
        "t": time.perf_counter(),
    }
    done.set()
    time.sleep(0.3)

    def key(text: str) -> tuple[str, int]:
        cam, st = text.split(":")
        return cam, int(st)

    t_pub = {key(k): v for k, v in peer_out["t_pub"].items()}
    t_recv = {key(k): v for k, v in peer_out["t_recv"].items()}
    measured = [key(x) for x in peer_out["measured"]]

    snap = node.stats.snapshot() if node.stats else None
    diag_latency = snap["latency"] if snap else []
    result: dict[str, Any] = {
        "checkpoint": checkpoint,
        "backend": backend,
        "runtime": node._runtime_text,
        "image": f"{width}x{height} bgr8",
        "model_input": f"{model_size}x{model_size}",
        "rate_hz": rate_hz,
        "seconds": seconds,
        "cameras": cameras,
        "raw_subscriptions": raw_subscriptions,
        "tracking_thread": tracking_thread,
        "retain_large_buffers": retain_large_buffers,
        "input_reliability": input_reliability,
        **latency_figures(measured, t_pub, t_cb, t_proc, t_recv, step_ms, diag_latency),
        "processed_stamps_increase": stamps_increase(processed_order),
        "lost_before_node": len(t_pub) - len(t_cb),
        **rss_figures(rss, warmup_s),
        "cpu_count": os.cpu_count(),
        "load_avg_1min_at_end": os.getloadavg()[0],
        **cpu_figures(window, cpu_end, worker_tid, spin_tid, tracking_tid),
    }
    if snap is not None:
        result.update(counter_figures(snap["cameras"].values()))
        # node-level events by kind (publish_error, tracking_dropped, ...)
        result["node_errors"] = dict(snap.get("errors", {}))
    node.trigger_deactivate()
    node_exec.shutdown()
    spin.join(10)
    node.destroy_node()
    rclpy.try_shutdown(context=node_ctx)
    return result


def _peer(args: dict[str, Any]) -> int:
    """The camera and the consumer, in their own process (no GIL shared with the node).

    Publishes ``n_total`` bgr8 frames at ``rate_hz`` to ``/<camera>/image_raw`` of every
    camera (one after the other each period) and records, per camera and stamp,
    ``time.perf_counter()`` (CLOCK_MONOTONIC: comparable across processes) just before
    ``publish()`` and on receipt of the matching ``/rvm/<camera>/features``.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from rvm_ros.msg import FeatureMap

    rclpy.init(domain_id=int(args["domain"]))
    peer = rclpy.create_node("rvm_overhead_bench_peer")
    cameras: list[str] = list(args.get("cameras", ["front"]))
    t_pub: dict[str, float] = {}
    t_recv: dict[str, float] = {}

    def on_features(cam: str, msg: FeatureMap) -> None:
        t = time.perf_counter()
        t_recv[f"{cam}:{int(msg.header.stamp.sec) * S + int(msg.header.stamp.nanosec)}"] = t

    pubs = {}
    for cam in cameras:
        peer.create_subscription(
            FeatureMap, f"/rvm/{cam}/features", lambda m, c=cam: on_features(c, m), 50
        )
        pubs[cam] = peer.create_publisher(
            Image, f"/{cam}/image_raw", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        )
    executor = SingleThreadedExecutor()
    executor.add_node(peer)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    deadline = time.monotonic() + 30
    while any(
        p.get_subscription_count() == 0 or peer.count_publishers(f"/rvm/{c}/features") == 0
        for c, p in pubs.items()
    ):
        if time.monotonic() > deadline:
            print("overhead_bench peer: the node did not match within 30 s", file=sys.stderr)
            return 1
        time.sleep(0.05)
    time.sleep(0.5)
    width, height = int(args["width"]), int(args["height"])
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes() for _ in range(8)]
    period = 1.0 / float(args["rate_hz"])
    measured: list[str] = []
    base = 1_000 * S
    t_start = time.perf_counter()
    for i in range(int(args["n_total"])):
        target = t_start + i * period
        now = time.perf_counter()
        if target > now:
            time.sleep(target - now)
        st = base + round(i * period * S)
        for cam, pub in pubs.items():
            msg = Image()
            msg.header = Header(frame_id=cam)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(st, S)
            msg.height, msg.width, msg.encoding, msg.step = height, width, "bgr8", width * 3
            msg.data = frames[i % len(frames)]
            t_pub[f"{cam}:{st}"] = time.perf_counter()
            pub.publish(msg)
            if i >= int(args["n_warm"]):
                measured.append(f"{cam}:{st}")
    end = time.monotonic() + 10  # let the last frames through
    while measured and measured[-1] not in t_recv and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.3)
    executor.shutdown()
    spin.join(10)
    Path(args["out"]).write_text(
        json.dumps(
            {
                "t_pub": t_pub,
                "t_recv": t_recv,
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
        "--tracking-sync",
        action="store_true",
        help="track on the inference thread, before the features go out (tracking_thread:=false)",
    )
    parser.add_argument(
        "--input-reliability", default="reliable", choices=("reliable", "best_effort")
    )
    parser.add_argument("--cameras", type=int, default=1, help="cameras (1-6), each at --rate")
    parser.add_argument("--variant", default="raw", choices=sorted(VARIANTS))
    parser.add_argument(
        "--compare", type=int, default=0, metavar="R", help="R rounds of --variants"
    )
    parser.add_argument(
        "--variants",
        default="ordinary,raw",
        help="comma-separated variants for --compare (the first is the ratios' reference)",
    )
    parser.add_argument("--overload", action="store_true", help="a model slower than the camera")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--peer", default=None, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    if args.peer is not None:
        return _peer(json.loads(args.peer))
    checkpoint = args.checkpoint or ("random:S" if args.overload else "random:tiny")
    seconds = args.seconds if args.seconds is not None else (60.0 if args.overload else 20.0)
    common: dict[str, Any] = dict(
        checkpoint=checkpoint,
        backend=args.backend,
        rate_hz=args.rate,
        seconds=seconds,
        width=args.width,
        height=args.height,
        model_size=args.model_size,
        tracking=not args.no_tracking,
        input_reliability=args.input_reliability,
        cameras=args.cameras,
        tracking_thread=not args.tracking_sync,
    )
    if args.compare > 0:
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown or not variants:
            parser.error(f"unknown variant(s) {unknown}; known: {', '.join(sorted(VARIANTS))}")
        res = compare(argv_common(args), variants, args.compare)
    else:
        raw, retain = VARIANTS[args.variant]
        res = run(**common, raw_subscriptions=raw, retain_large_buffers=retain)
        res["variant"] = args.variant
    for key, value in res.items():
        if key == "rounds":
            continue
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
