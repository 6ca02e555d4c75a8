"""Node-overhead benchmark: ``python -m rvm_ros.bench.node_overhead [--overload] [--json F]``.

``--cameras N`` publishes N cameras (each at ``--rate``). ``--variant`` picks the node's
hot-path settings: ``ordinary`` (``raw_subscriptions:=false retain_large_buffers:=false``,
the node before issue 17), ``ordinary+retain``, ``raw-only`` (serialized subscriptions,
default malloc) and ``raw`` (both on), all on ``SingleThreadedExecutor``, and ``events``
(``raw`` on rclpy's EventsExecutor: the node's default where rclpy has it, issue 26).
``--compare R`` runs R rounds of the ``--variants`` (order rotating each round), each run
in its own process (the malloc setting is process-wide), and reports medians and the
median per-round ratio of each variant to the first.

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
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rvm_ros.bench.node_overhead_compare import VARIANTS, argv_common, compare
from rvm_ros.bench.node_overhead_figures import (
    CpuReading,
    Figures,
    Frame,
    counter_figures,
    cpu_figures,
    latency_figures,
    rss_figures,
    stamps_increase,
)
from rvm_ros.bench.node_overhead_peer import FIRST_STAMP, PeerRecords, run_peer
from rvm_ros.bench.node_overhead_threads import rss_mib, thread_cpu_s, thread_stats
from rvm_ros.fsutil import atomic_write
from rvm_ros.imaging.cdr import cdr_header_ns
from rvm_ros.pipeline.types import FrameInput, FrameResult, FrameSkip
from rvm_ros.stamps import NS_PER_SEC, header_ns

if TYPE_CHECKING:
    from sensor_msgs.msg import CompressedImage, Image

    from rvm_ros.node.inference import InferenceRuntime
    from rvm_ros.node.node import RvmNode

__all__ = ["main", "run"]

S = NS_PER_SEC

CAMERA_NAMES = ("front", "front_left", "front_right", "rear", "rear_left", "rear_right")
#: The node settings repeated in each run's figures.
_REPORTED_SETTINGS = (
    "raw_subscriptions",
    "tracking_thread",
    "retain_large_buffers",
    "executor",
    "opencv_threads",
    "input_reliability",
)


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
    executor: str = "single_threaded",
    opencv_threads: int = 0,
) -> Figures:
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
        executor: The node's ``executor`` (``events`` or ``single_threaded``).
        opencv_threads: The node's ``opencv_threads`` (0: OpenCV's own pool).
    """
    if not 1 <= cameras <= len(CAMERA_NAMES):
        raise ValueError(f"cameras must be 1..{len(CAMERA_NAMES)}, got {cameras}")
    names = list(CAMERA_NAMES[:cameras])
    settings = _node_settings(
        checkpoint, backend, model_size, tracking, input_reliability, names,
        raw_subscriptions, retain_large_buffers, tracking_thread, executor, opencv_threads,
    )  # fmt: skip
    first_measured = FIRST_STAMP + round(int(warmup_s * rate_hz) / rate_hz * S)
    bench = _NodeUnderTest(settings, first_measured)
    peer_out = run_peer(
        {
            "domain": bench.domain,
            "rate_hz": rate_hz,
            "n_total": int((warmup_s + seconds) * rate_hz),
            "n_warm": int(warmup_s * rate_hz),
            "width": width,
            "height": height,
            "cameras": names,
            "out": "",  # the file run_peer picks
        },
        timeout_s=warmup_s + seconds + 120,
    )
    # End of the CPU window (the peer has sent everything and waited for the outputs).
    cpu_end = bench.probes.reading(len(bench.probes.t_cb))
    bench.stop_sampling()
    result: Figures = {
        "checkpoint": checkpoint,
        "backend": backend,
        "runtime": bench.node.runtime_text,
        "image": f"{width}x{height} bgr8",
        "model_input": f"{model_size}x{model_size}",
        "rate_hz": rate_hz,
        "seconds": seconds,
        "cameras": cameras,
        **{k: settings[k] for k in _REPORTED_SETTINGS},
        **_measured_figures(bench, peer_out, cpu_end, warmup_s),
    }
    bench.shutdown()
    return result


def _node_settings(
    checkpoint: str,
    backend: str,
    model_size: int,
    tracking: bool,
    input_reliability: str,
    cameras: list[str],
    raw_subscriptions: bool,
    retain_large_buffers: bool,
    tracking_thread: bool,
    executor: str,
    opencv_threads: int,
) -> dict[str, object]:
    """The node's parameters for a run (see `run`)."""
    return {
        "checkpoint": checkpoint,
        "backend": backend,
        "model_height": model_size,
        "model_width": model_size,
        "tracking": tracking,
        "track_grid": 4 if tracking else 0,
        "reset_on_gap_s": 5.0,
        "publish_debug_image": False,
        "input_reliability": input_reliability,
        "cameras": cameras,
        "raw_subscriptions": raw_subscriptions,
        "retain_large_buffers": retain_large_buffers,
        "tracking_thread": tracking_thread,
        "executor": executor,
        "opencv_threads": opencv_threads,
    }


def _measured_figures(
    bench: _NodeUnderTest, peer_out: PeerRecords, cpu_end: CpuReading, warmup_s: float
) -> Figures:
    """Latencies, memory, CPU and the node's counters of a finished run.

    The counters are read once the camera has stopped and the node has drained its input:
    every camera's last frame reached the callback and nothing waits in a slot or a step.
    """
    drained = bench.drain(_last_stamps(peer_out["t_pub"]))
    t_pub = {_frame(k): v for k, v in peer_out["t_pub"].items()}
    t_recv = {_frame(k): v for k, v in peer_out["t_recv"].items()}
    measured = [_frame(x) for x in peer_out["measured"]]
    probes = bench.probes
    stats = bench.node.stats
    snap = stats.snapshot() if stats else None
    result: Figures = {
        "drained": drained,
        **latency_figures(
            measured,
            t_pub,
            probes.t_cb,
            probes.t_proc,
            t_recv,
            probes.step_ms,
            snap["latency"] if snap else [],
        ),
        "processed_stamps_increase": stamps_increase(probes.processed_order),
        "lost_before_node": len(t_pub) - len(probes.t_cb),
        **_edge_figures(t_pub, probes.t_cb),
        **rss_figures(bench.rss, warmup_s),
        "cpu_count": os.cpu_count(),
        "load_avg_1min_at_end": os.getloadavg()[0],
        **cpu_figures(probes.window, cpu_end, *bench.thread_ids()),
    }
    if snap is not None:
        result.update(counter_figures(snap["cameras"].values(), len(t_pub)))
        # node-level events by kind (publish_error, tracking_dropped, ...)
        result["node_errors"] = dict(snap.get("errors", {}))
    return result


#: Stamp of the peer's first frame (ns): far from 0, so no stamp is ever negative.


def _edge_figures(t_pub: dict[Frame, float], t_cb: dict[Frame, float]) -> Figures:
    """Frames no stamp gap can show: per camera those sent before the first frame the
    node's callback saw and after the last one; and the longest run of unseen frames."""
    before = after = longest = in_long = 0
    for cam in {c for c, _ in t_pub}:
        seen = [(c, st) in t_cb for c, st in sorted(k for k in t_pub if k[0] == cam)]
        if True not in seen:
            before += len(seen)
            continue
        first, last = seen.index(True), len(seen) - 1 - seen[::-1].index(True)
        before, after = before + first, after + len(seen) - 1 - last
        runs = "".join("x" if s else "." for s in seen[first:last]).split("x")
        longest = max([longest, *map(len, runs)])
        in_long = in_long + sum(len(r) for r in runs if len(r) > 30)
    return {
        "sent_before_first_received": before,
        "sent_after_last_received": after,
        "longest_unseen_run": longest,
        # Frames in runs of more than 30 unseen frames (a gap the node counts only when
        # transport lost frames within it: see StampGapEstimator).
        "sent_in_unseen_runs_over_30": in_long,
    }


def _last_stamps(t_pub: dict[str, float]) -> dict[str, int]:
    """Per camera, the stamp of the last frame the peer published."""
    last: dict[str, int] = {}
    for key in t_pub:
        cam, st = _frame(key)
        last[cam] = max(st, last.get(cam, st))
    return last


def _frame(text: str) -> Frame:
    """``"camera:stamp"`` (the peer's JSON keys) -> ``(camera, stamp)``."""
    cam, st = text.split(":")
    return cam, int(st)


class _Probes:
    """What the benchmark records inside the node: per frame when its callback started,
    when its batch entered and left ``Processor.process`` and its ``encoder.step`` time;
    the processed stamps per camera; and the CPU clocks at the measured window's start.

    Args:
        first_measured: Stamp of the first measured frame (it starts the CPU window).
    """

    def __init__(self, first_measured: int) -> None:
        self.first_measured = first_measured
        self.t_cb: dict[Frame, float] = {}
        self.t_proc: dict[Frame, tuple[float, float]] = {}
        self.step_ms: dict[Frame, float] = {}
        self.processed_order: dict[str, list[int]] = {}
        self.window: CpuReading | None = None
        self.in_step_s = 0.0  # inference-thread CPU seconds inside encoder.step
        self.executor_clock = 0
        self.worker_clock = 0

    def reading(self, received: int) -> CpuReading:
        """The CPU clocks now (``received``: frames the node's callback saw so far)."""
        return CpuReading(
            received=received,
            threads=thread_cpu_s(),
            faults={t: f for t, (_, _, f) in thread_stats().items()},
            executor_s=time.clock_gettime(self.executor_clock),
            worker_s=time.clock_gettime(self.worker_clock),
            in_step_s=self.in_step_s,
            t=time.perf_counter(),
        )

    def wrap_intake(self, node: RvmNode) -> None:
        """Time the node's image callback (before ``on_configure`` binds it)."""
        original = node.on_image

        def on_image(cam: str, msg: Image | CompressedImage | bytes) -> None:
            t = time.perf_counter()
            # raw subscription: the stamp read from the CDR bytes
            st = cdr_header_ns(msg) if isinstance(msg, bytes) else header_ns(msg.header)
            self.t_cb[(cam, st)] = t
            if st >= self.first_measured and self.window is None:
                self.window = replace(self.reading(len(self.t_cb) - 1), t=t)
            original(cam, msg)

        node.on_image = on_image  # type: ignore[method-assign]

    def wrap_runtime(self, runtime: InferenceRuntime, cameras: list[str]) -> None:
        """Record each result's step time and each batch's ``Processor.process`` call."""
        self.processed_order = {c: [] for c in cameras}
        self.worker_clock = _thread_clock(runtime.thread)
        publish_result = runtime.outputs.publish_result
        process = runtime.processor.process
        step = runtime.encoder.step

        def timed_publish(res: FrameResult | FrameSkip, frame: FrameInput | None) -> None:
            if isinstance(res, FrameResult):
                self.step_ms[(res.camera, res.stamp_ns)] = res.step_ms
                self.processed_order[res.camera].append(res.stamp_ns)
            publish_result(res, frame)

        def timed_process(batch: Sequence[FrameInput]) -> list[FrameResult | FrameSkip]:
            t0 = time.perf_counter()
            out = process(batch)
            t1 = time.perf_counter()
            for f in batch:
                self.t_proc[(f.camera, f.stamp_ns)] = (t0, t1)
            return out

        def cpu_timed_step(frames: np.ndarray, cameras: Sequence[str]) -> np.ndarray:
            c0 = time.thread_time()
            try:
                return step(frames, cameras)
            finally:
                self.in_step_s += time.thread_time() - c0

        runtime.outputs.publish_result = timed_publish  # type: ignore[method-assign]
        runtime.processor.process = timed_process  # type: ignore[method-assign]
        runtime.encoder.step = cpu_timed_step  # type: ignore[method-assign]


def _thread_clock(thread: threading.Thread | None) -> int:
    """The CPU clock id of a started thread."""
    assert thread is not None and thread.ident is not None
    return time.pthread_getcpuclockid(thread.ident)


class _NodeUnderTest:
    """The real `RvmNode` of ``settings``, active and spinning in this process, with its
    probes and a resident-memory sampler (one sample a second)."""

    def __init__(self, settings: dict[str, object], first_measured: int) -> None:
        import rclpy
        import rclpy.lifecycle
        from rclpy.context import Context
        from rclpy.parameter import Parameter

        from rvm_ros.node.executor import make_executor
        from rvm_ros.node.node import RvmNode

        self.domain = random.Random(os.getpid() ^ time.time_ns()).randint(1, 200)
        self.context = Context()
        rclpy.init(context=self.context, domain_id=self.domain)
        overrides = [Parameter(name, value=value) for name, value in settings.items()]
        self.node = RvmNode(context=self.context, parameter_overrides=overrides)
        self.probes = _Probes(first_measured)
        self.probes.wrap_intake(self.node)
        self.executor, _ = make_executor(str(settings["executor"]), self.context)
        self.executor.add_node(self.node)
        ok = rclpy.lifecycle.TransitionCallbackReturn.SUCCESS
        if self.node.trigger_configure() != ok or self.node.trigger_activate() != ok:
            raise RuntimeError("the node did not activate (see its log)")
        self.runtime = self.node.runtime
        assert self.runtime is not None
        self.probes.wrap_runtime(self.runtime, list(self.node.cfg.cameras if self.node.cfg else ()))
        # spin_once in a loop, not spin(): rclpy's EventsExecutor deadlocks when shut down
        # from another thread while spin() runs; the loop ends first, then it shuts down.
        self._spinning = True
        self.spin = threading.Thread(target=self._spin_loop, daemon=True)
        self.spin.start()
        while self.spin.ident is None:
            time.sleep(0.001)
        self.probes.executor_clock = _thread_clock(self.spin)
        self.rss: list[tuple[float, float]] = []
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)
        self._sampler.start()

    def _sample_rss(self) -> None:
        t0 = time.perf_counter()
        while not self._done.wait(1.0):
            self.rss.append((time.perf_counter() - t0, rss_mib()))

    def stop_sampling(self) -> None:
        """End the memory samples."""
        self._done.set()
        time.sleep(0.3)

    def drain(self, last_stamps: dict[str, int], timeout_s: float = 15.0) -> bool:
        """Wait until the node's callback saw each camera's last published frame and no
        received frame is still in flight (in a slot or a step), then a moment for the
        RMW's message-lost events to be taken; returns whether it drained in time."""
        stats = self.node.stats
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = all((cam, st) in self.probes.t_cb for cam, st in last_stamps.items())
            snap = stats.snapshot()["cameras"] if stats is not None else {}
            if seen and all(c.in_flight == 0 for c in snap.values()):
                time.sleep(0.5)
                return True
            time.sleep(0.05)
        return False

    def thread_ids(self) -> tuple[int | None, int | None, int | None]:
        """Native ids of the inference, executor and tracking threads."""
        assert self.runtime is not None and self.runtime.thread is not None
        tracker = self.runtime.outputs.tracking_thread
        return (
            self.runtime.thread.native_id,
            self.spin.native_id,
            tracker.native_id if tracker is not None else None,
        )

    def _spin_loop(self) -> None:
        while self._spinning:
            self.executor.spin_once(timeout_sec=0.05)

    def shutdown(self) -> None:
        """Deactivate the node and shut its context down."""
        import rclpy

        self.node.trigger_deactivate()
        self._spinning = False
        self.spin.join(10)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


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
    args = parser.parse_args(argv)
    checkpoint = args.checkpoint or ("random:S" if args.overload else "random:tiny")
    seconds = args.seconds if args.seconds is not None else (60.0 if args.overload else 20.0)
    if args.compare > 0:
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown or not variants:
            parser.error(f"unknown variant(s) {unknown}; known: {', '.join(sorted(VARIANTS))}")
        res = compare(argv_common(args), variants, args.compare)
    else:
        raw, retain, executor, cv_threads = VARIANTS[args.variant]
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
            cameras=args.cameras,
            tracking_thread=not args.tracking_sync,
            raw_subscriptions=raw,
            retain_large_buffers=retain,
            executor=executor,
            opencv_threads=cv_threads,
        )
        res["variant"] = args.variant
    for key, value in res.items():
        if key == "rounds":
            continue
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json:
        text = json.dumps(res, indent=2)
        atomic_write(Path(args.json), lambda tmp: tmp.write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
