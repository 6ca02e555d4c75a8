"""The node-overhead benchmark's figures, computed from what a run recorded.

Pure functions over the run's records (``time.perf_counter`` stamps per frame, per-thread
CPU clocks at both ends of the measured window, resident memory samples, the node's
counters); no ROS. Per frame: ``latency = t_receive - t_publish``,
``overhead = latency - step`` (the model step time of that very frame), split into
publish -> node callback (DDS in), callback -> step start (decoding, the slot, the
batching window), Processor work other than ``encoder.step`` and step end -> receive
(message filling, DDS out).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rvm_ros.bench.node_overhead_threads import cpu_delta

if TYPE_CHECKING:
    from rvm_ros.node.diagnostics import CameraCounters

__all__ = [
    "CpuReading",
    "Figures",
    "Frame",
    "counter_figures",
    "cpu_figures",
    "latency_figures",
    "pct",
    "rss_figures",
    "stamps_increase",
]

Frame = tuple[str, int]  # (camera, stamp in ns)

#: A run's figures by name (Any: a JSON record of numbers, strings, flags and lists).
Figures = dict[str, Any]


@dataclass(frozen=True)
class CpuReading:
    """The CPU clocks at one end of the measured window.

    Attributes:
        received: frames the node's image callback had seen.
        threads: native thread id -> (name, CPU seconds), every thread of the process.
        faults: native thread id -> minor page faults.
        executor_s: CPU seconds of the node's executor thread.
        worker_s: CPU seconds of the node's inference thread.
        in_step_s: CPU seconds of the inference thread inside ``encoder.step``.
        t: ``time.perf_counter()`` of the reading.
    """

    received: int
    threads: dict[int, tuple[str, float]]
    faults: dict[int, int]
    executor_s: float
    worker_s: float
    in_step_s: float
    t: float


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (NaN when there are none)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def latency_figures(
    measured: Sequence[Frame],
    t_pub: Mapping[Frame, float],
    t_cb: Mapping[Frame, float],
    t_proc: Mapping[Frame, tuple[float, float]],
    t_recv: Mapping[Frame, float],
    step_ms: Mapping[Frame, float],
    process_call_s: Sequence[float],
) -> Figures:
    """Latency, step time and the overhead split (ms, median and 99th percentile).

    A measured frame counts when every stamp of it was recorded (it reached the node,
    was processed and its features came back).

    Args:
        measured: the frames published after the warm-up.
        t_pub: per frame, just before ``publish()`` (the peer).
        t_cb: per frame, when the node's subscription callback started.
        t_proc: per frame, when its batch entered and left ``Processor.process``.
        t_recv: per frame, when the peer received its features.
        step_ms: per frame, the wall time of ``encoder.step`` (``FrameResult.step_ms``).
        process_call_s: the node diagnostics' process-call latencies (seconds).
    """
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
    return {
        "published": len(measured),
        "received_outputs": len(latency),
        "overhead_ms_p50": pct(overhead, 50),
        "overhead_ms_p99": pct(overhead, 99),
        "latency_ms_p50": pct(latency, 50),
        "latency_ms_p99": pct(latency, 99),
        "step_ms_p50": pct(steps, 50),
        "step_ms_p99": pct(steps, 99),
        "process_call_ms_p50": pct([x * 1e3 for x in process_call_s], 50),
        # Overhead split: publish -> node callback (DDS in: 640x480x3 bytes), callback ->
        # step start (deserialised message to decode, slot, wake-up, batching window),
        # Processor work other than encoder.step (preprocess, pooling, tracking),
        # step end -> receive (message filling, publish, DDS out).
        "dds_in_ms_p50": pct(dds_in, 50),
        "dds_in_ms_p99": pct(dds_in, 99),
        "callback_to_step_ms_p50": pct(node_in, 50),
        "callback_to_step_ms_p99": pct(node_in, 99),
        "processor_non_model_ms_p50": pct(inside, 50),
        "processor_non_model_ms_p99": pct(inside, 99),
        "after_process_ms_p50": pct(after, 50),
        "after_process_ms_p99": pct(after, 99),
    }


def stamps_increase(processed_order: Mapping[str, Sequence[int]]) -> bool:
    """Whether every camera's processed stamps only ever increase (no stale frame)."""
    return all(b > a for order in processed_order.values() for a, b in itertools.pairwise(order))


def rss_figures(rss: Sequence[tuple[float, float]], warmup_s: float) -> Figures:
    """Resident memory over the run from ``(seconds since start, MiB)`` samples."""
    return {
        "rss_mib_first": rss[0][1] if rss else float("nan"),
        "rss_mib_after_warmup": next((r for t, r in rss if t >= warmup_s + 1.0), float("nan")),
        "rss_mib_last": rss[-1][1] if rss else float("nan"),
        "rss_mib_max": max((r for _, r in rss), default=float("nan")),
        # Resident memory every 10 s: (seconds since the first frame, MiB).
        "rss_series": [(round(t, 1), round(r, 1)) for t, r in rss[:: max(1, 10)]],
    }


def cpu_figures(
    window: CpuReading | None,
    cpu_end: CpuReading,
    worker_tid: int | None,
    spin_tid: int | None,
    tracking_tid: int | None = None,
) -> Figures:
    """The node's CPU time per received frame over the measured window, by thread.

    Args:
        window: the readings at the window's start (``t``: when its first frame's callback
            started); None when no measured frame arrived (then there are no figures).
        cpu_end: the same readings at its end.
        worker_tid: native id of the node's inference thread.
        spin_tid: native id of the node's executor thread.
        tracking_tid: native id of the node's tracking thread (``tracking_thread``), if any.
    """
    if window is None:
        return {}
    frames = max(1, cpu_end.received - window.received)
    threads = cpu_delta(window.threads, cpu_end.threads)
    dds = sum(c for t, (n, c) in threads.items() if n.startswith("dds."))
    tracking_s = threads[tracking_tid][1] if tracking_tid in threads else 0.0
    model_pool = sum(
        c
        for t, (n, c) in threads.items()
        if t not in (worker_tid, spin_tid, tracking_tid) and not n.startswith("dds.")
    )
    executor_s = cpu_end.executor_s - window.executor_s
    in_step_s = cpu_end.in_step_s - window.in_step_s
    worker_other_s = cpu_end.worker_s - window.worker_s - in_step_s
    by_name = _cpu_by_thread(threads, worker_tid, spin_tid, tracking_tid)
    return {
        "cpu_window_s": cpu_end.t - window.t,
        "cpu_window_frames_received": frames,
        # The node's own CPU per received frame: callbacks + inference thread outside
        # the model step + the tracking thread + Fast DDS threads.
        "node_cpu_ms_per_frame": (executor_s + worker_other_s + tracking_s + dds) / frames * 1e3,
        "tracking_thread_cpu_ms_per_frame": tracking_s / frames * 1e3,
        "executor_cpu_ms_per_frame": executor_s / frames * 1e3,
        "inference_non_model_cpu_ms_per_frame": worker_other_s / frames * 1e3,
        "dds_threads_cpu_ms_per_frame": dds / frames * 1e3,
        # The model (inference thread inside encoder.step) and every other thread
        # (torch's pool, the benchmark's main and sampler threads).
        "model_cpu_ms_per_frame": in_step_s / frames * 1e3,
        "other_threads_cpu_ms_per_frame": model_pool / frames * 1e3,
        "thread_cpu_s_by_name": by_name,
        "executor_minor_faults_per_frame": _faults(window, cpu_end, spin_tid) / frames,
        "inference_minor_faults_per_frame": _faults(window, cpu_end, worker_tid) / frames,
    }


def _faults(start: CpuReading, end: CpuReading, tid: int | None) -> int:
    """Minor page faults of thread ``tid`` between two readings (0 for no thread)."""
    if tid is None:
        return 0
    return end.faults.get(tid, 0) - start.faults.get(tid, 0)


def _cpu_by_thread(
    threads: Mapping[int, tuple[str, float]],
    worker_tid: int | None,
    spin_tid: int | None,
    tracking_tid: int | None,
) -> dict[str, float]:
    """CPU seconds by thread name (the node's own threads by their role)."""
    by_name: dict[str, float] = {}
    for t, (n, c) in threads.items():
        label = (
            "executor"
            if t == spin_tid
            else "inference"
            if t == worker_tid
            else "tracking"
            if t == tracking_tid
            else n
        )
        by_name[label] = round(by_name.get(label, 0.0) + c, 3)
    return by_name


def counter_figures(cams: Iterable[CameraCounters], sent: int | None = None) -> Figures:
    """The node's frame counters summed over cameras, and whether they add up.

    Args:
        cams: per camera the node diagnostics' counters (``received``, ``processed``,
            ``dropped``, ``ignored``, ``lost``, ``rejected`` and ``skipped`` by reason).
        sent: frames the cameras published (the peer's count), when known: adds
            ``frames_unaccounted`` (sent frames the node counted nowhere) and the share of
            frames neither processed nor lost in transport, by cause.
    """
    cams = list(cams)
    received = sum(c.received for c in cams)
    processed = sum(c.processed for c in cams)
    dropped = sum(c.dropped for c in cams)
    ignored = sum(c.ignored for c in cams)
    rejected = sum(sum(c.rejected.values()) for c in cams)
    skipped = sum(sum(c.skipped.values()) for c in cams)
    stopped = sum(c.stopped for c in cams)
    out: Figures = {
        "node_received": received,
        "node_processed": processed,
        "node_dropped": dropped,
        "node_rejected": rejected,
        "node_skipped": skipped,
        "node_skipped_by_reason": dict(sum((c.skipped for c in cams), start=Counter())),
        "node_rejected_by_cause": dict(sum((c.rejected for c in cams), start=Counter())),
        "node_ignored_inactive": ignored,
        "node_stopped_unprocessed": stopped,
        "node_in_flight": sum(c.in_flight for c in cams),
        "node_lost_in_transport": sum(c.lost for c in cams),
        "node_overwritten_in_queue": sum(c.overwritten for c in cams),
        "node_missing_from_stamps": sum(c.missing for c in cams),
        "node_lost_before_first_frame": sum(c.lost_before_first for c in cams),
        "node_published_estimate": sum(c.published for c in cams),
        "drops_equal_not_processed": (
            dropped == received - processed - rejected - skipped - ignored - stopped
        ),
    }
    if sent is not None:
        out.update(_accounting_figures(out, sent))
    return out


def _accounting_figures(counts: Figures, sent: int) -> Figures:
    """Where the ``sent`` frames went: unaccounted, and not processed nor lost by cause."""
    lost = int(counts["node_lost_in_transport"])
    not_processed = {
        "replaced_by_newer": int(counts["node_dropped"]),
        "overwritten_in_queue": int(counts["node_overwritten_in_queue"]),
        "rejected": int(counts["node_rejected"]),
        "skipped": int(counts["node_skipped"]),
        "ignored_inactive": int(counts["node_ignored_inactive"]),
        "stopped_unprocessed": int(counts["node_stopped_unprocessed"]),
        "in_flight": int(counts["node_in_flight"]),
    }
    neither = sent - int(counts["node_processed"]) - lost
    return {
        "frames_sent": sent,
        # Sent frames the node counted nowhere (received, lost or overwritten).
        "frames_unaccounted": sent - int(counts["node_published_estimate"]),
        "frames_neither_processed_nor_lost": neither,
        "frames_neither_processed_nor_lost_pct": 100.0 * neither / max(1, sent),
        "frames_not_processed_by_cause": {k: v for k, v in not_processed.items() if v},
    }
