"""Thread-safe counters of the node and their ``/diagnostics`` form.

The counting (:class:`NodeStats`) and the status summary (:func:`summarize`) are pure
Python; :func:`to_diagnostic_array` turns the summary into a
``diagnostic_msgs/DiagnosticArray``.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray

__all__ = [
    "ERROR",
    "LOSS_HINT",
    "OK",
    "OVERWRITE_HINT",
    "WARN",
    "CameraCounters",
    "NodeStats",
    "Snapshot",
    "StatusSummary",
    "summarize",
    "to_diagnostic_array",
]

OK = 0
WARN = 1
ERROR = 2
#: Seconds the tracking thread may spend on one frame before /diagnostics says ERROR.
TRACKING_STALL_S = 5.0

HARDWARE_ID = "rvm_ros"
# Distinct messages logged per camera and failure cause in one diagnostics period.
LOG_DISTINCT_PER_PERIOD = 5

#: What a WARN about frames lost in transport tells the user.
OVERWRITE_HINT = (
    "the node reads this camera more slowly than it publishes; each newer frame replaced an "
    "unread one in the DDS queue (raise input_depth, lower the camera rate, or give the "
    "executor more CPU)"
)
LOSS_HINT = (
    "frames larger than the shared-memory segment are fragmented over UDP; "
    "use config/fastdds_large_images.xml or reliable QoS"
)


@dataclass
class CameraCounters:
    """Totals of one camera since the node was configured.

    Every received frame ends up in exactly one of: processed, dropped (replaced by a
    newer frame before processing: the newest-frame rule), ignored (node not active),
    rejected (by cause), skipped (by the processor, by reason) or stopped (waiting in the
    newest-frame slot when the node was deactivated); until then it is
    :attr:`in_flight`. Frames the camera published that never reached the callback are
    counted too: ``lost`` (lost in transport: the RMW's message-lost event, or, where the
    RMW has none (``lost_estimated``), estimated from stamp gaps) and :attr:`overwritten`
    (replaced in the subscription's DDS queue before the node read them). ``missing``
    counts the frames absent from the stamp sequence at the camera's rate
    (:class:`rvm_ros.node.stamp_gaps.StampGapEstimator`): transport loss and queue
    overwrites together.
    """

    received: int = 0
    processed: int = 0
    dropped: int = 0
    ignored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    resets: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    lost_estimated: bool = False
    missing: int = 0
    stopped: int = 0
    lost_before_first: int = 0

    @property
    def in_flight(self) -> int:
        """Received frames not yet in a final bucket: waiting in the newest-frame slot or
        in the step being run (0 once the node has drained its input)."""
        settled = self.processed + self.dropped + self.ignored + self.stopped
        settled += sum(self.rejected.values()) + sum(self.skipped.values())
        return self.received - settled

    @property
    def overwritten(self) -> int:
        """Frames overwritten in the subscription queue before the node read them.

        The stamp gaps not explained by the RMW's message-lost event (less the frames it
        reported lost before the camera's first received frame: they are in no gap).
        Where the RMW has no such event, every gap already counts as ``lost`` (the two
        causes cannot be told apart), and this is 0.
        """
        if self.lost_estimated:
            return 0
        return max(0, self.missing - (self.lost - self.lost_before_first))

    @property
    def published(self) -> int:
        """Frames the camera published, as far as the node can tell: received, plus lost
        in transport, plus overwritten in the queue."""
        return self.received + self.lost + self.overwritten

    def copy(self) -> CameraCounters:
        """A deep copy."""
        return CameraCounters(
            self.received,
            self.processed,
            self.dropped,
            self.ignored,
            Counter(self.rejected),
            Counter(self.resets),
            Counter(self.skipped),
            self.lost,
            self.lost_estimated,
            self.missing,
            self.stopped,
            self.lost_before_first,
        )


class _SnapshotCounters(TypedDict):
    cameras: dict[str, CameraCounters]
    latency: list[float]
    batch_sizes: list[int]
    steps: int
    qos: dict[str, int]
    errors: dict[str, int]


class Snapshot(_SnapshotCounters, total=False):
    """A consistent copy of the node's counters (:meth:`NodeStats.snapshot`).

    ``cameras``: per-camera totals; ``latency``: recent step seconds; ``batch_sizes``:
    their batch sizes; ``steps``: steps run; ``qos``: topic -> incompatible-QoS events;
    ``errors``: node-level failure kind -> count; ``tracking_busy`` (added by the node):
    ``(camera, seconds)`` the tracking thread has been on one frame, or None.
    """

    tracking_busy: tuple[str, float] | None


@dataclass(frozen=True)
class StatusSummary:
    """One ``DiagnosticStatus``: name, level, message and key/value pairs."""

    name: str
    level: int
    message: str
    values: tuple[tuple[str, str], ...]


class NodeStats:
    """Counters updated from the executor and the inference thread.

    Args:
        cameras: Camera names.
        latency_window: Number of most recent step latencies kept for p50 / p99.
    """

    def __init__(self, cameras: tuple[str, ...] | list[str], latency_window: int = 300) -> None:
        self._lock = threading.Lock()
        self._cams = {c: CameraCounters() for c in cameras}
        self._latency: deque[float] = deque(maxlen=latency_window)
        self._batch_sizes: deque[int] = deque(maxlen=latency_window)
        self._steps = 0
        self._qos: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()
        # (camera, kind, message) logged in the current diagnostics period
        self._logged_period: set[tuple[str, str, str]] = set()

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names."""
        return tuple(self._cams)

    def received(self, camera: str) -> None:
        """One message arrived on ``camera``'s topic."""
        with self._lock:
            self._cams[camera].received += 1

    def dropped(self, camera: str, count: int = 1) -> None:
        """``count`` frames of ``camera`` were replaced by newer ones before processing."""
        with self._lock:
            self._cams[camera].dropped += count

    def stopped(self, camera: str, count: int) -> None:
        """``count`` frames of ``camera`` were waiting, never processed, when the node
        stopped processing (deactivated)."""
        with self._lock:
            self._cams[camera].stopped += count

    def ignored(self, camera: str) -> None:
        """A frame of ``camera`` arrived while the node was not active."""
        with self._lock:
            self._cams[camera].ignored += 1

    def rejected(self, camera: str, cause: str, message: str = "") -> bool:
        """A frame of ``camera`` was refused; returns True when this is worth logging.

        True for the first rejection of each distinct ``message`` (per cause) in the
        current period (:meth:`new_period`), at most :data:`LOG_DISTINCT_PER_PERIOD`
        messages per camera and cause: a later, different failure with the same cause is
        still logged, a repeated one is only counted.
        """
        with self._lock:
            self._cams[camera].rejected[cause] += 1
            return self._first_in_period(camera, cause, message)

    def skipped(self, camera: str, reason: str, message: str = "") -> bool:
        """The processor skipped a frame; returns True when worth logging (see
        :meth:`rejected`)."""
        with self._lock:
            self._cams[camera].skipped[reason] += 1
            return self._first_in_period(camera, "skip:" + reason, message)

    def _first_in_period(self, camera: str, kind: str, message: str) -> bool:
        key = (camera, kind, message)
        if key in self._logged_period:
            return False
        same_kind = sum(1 for c, k, _m in self._logged_period if c == camera and k == kind)
        if same_kind >= LOG_DISTINCT_PER_PERIOD:
            return False
        self._logged_period.add(key)
        return True

    def new_period(self) -> None:
        """Start a diagnostics period: each distinct failure message may be logged again."""
        with self._lock:
            self._logged_period.clear()

    def processed(self, camera: str, reset_reason: str | None = None) -> None:
        """A frame of ``camera`` was processed (after a reset when ``reset_reason`` is set)."""
        with self._lock:
            cam = self._cams[camera]
            cam.processed += 1
            if reset_reason:
                cam.resets[reset_reason] += 1

    def step(self, seconds: float, batch_size: int) -> None:
        """One batched processing step took ``seconds``."""
        with self._lock:
            self._latency.append(seconds)
            self._batch_sizes.append(batch_size)
            self._steps += 1

    def error(self, kind: str) -> bool:
        """A node-level failure (``publish_error``, ...); returns True the first time."""
        with self._lock:
            first = kind not in self._errors
            self._errors[kind] += 1
            return first

    def qos_incompatible(self, topic: str) -> bool:
        """An incompatible QoS peer on ``topic``; returns True the first time for it."""
        with self._lock:
            first = topic not in self._qos
            self._qos[topic] += 1
            return first

    def lost(self, camera: str, count: int, estimated: bool = False) -> bool:
        """``count`` frames of ``camera`` were lost before reaching the node (``estimated``:
        from stamp gaps, not the RMW); returns True the first time for this camera."""
        with self._lock:
            cam = self._cams[camera]
            cam.lost += count
            cam.lost_estimated = cam.lost_estimated or estimated
            key = (camera, "lost")
            first = key not in self._logged
            self._logged.add(key)
            return first

    def gap(self, camera: str, count: int) -> bool:
        """``count`` frames of ``camera`` are missing from its stamp sequence; returns True
        the first time some of them are overwritten in the queue (not lost in transport)."""
        with self._lock:
            cam = self._cams[camera]
            cam.missing += count
            key = (camera, "overwritten")
            first = cam.overwritten > 0 and key not in self._logged
            if first:
                self._logged.add(key)
            return first

    def first_frame(self, camera: str) -> None:
        """``camera``'s first stamp is counted: the frames lost in transport until now came
        before it, in no stamp gap."""
        with self._lock:
            cam = self._cams[camera]
            cam.lost_before_first = cam.lost

    def lost_count(self, camera: str) -> int:
        """Frames of ``camera`` lost in transport so far."""
        with self._lock:
            return self._cams[camera].lost

    def estimated_cameras(self) -> frozenset[str]:
        """Cameras whose loss is estimated from stamp gaps (the RMW reports no lost
        samples)."""
        with self._lock:
            return frozenset(c for c, v in self._cams.items() if v.lost_estimated)

    def estimate_loss(self, camera: str) -> None:
        """Mark ``camera``'s loss count as an estimate (the RMW reports no lost samples)."""
        with self._lock:
            self._cams[camera].lost_estimated = True

    def snapshot(self) -> Snapshot:
        """A consistent copy of every counter."""
        with self._lock:
            return {
                "cameras": {c: v.copy() for c, v in self._cams.items()},
                "latency": list(self._latency),
                "batch_sizes": list(self._batch_sizes),
                "steps": self._steps,
                "qos": dict(self._qos),
                "errors": dict(self._errors),
            }


def _counter_text(counter: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items())) or "none"


def summarize(
    snap: Snapshot,
    previous: Snapshot | None,
    period_s: float,
    node_name: str,
    runtime: str,
    active: bool,
) -> list[StatusSummary]:
    """Turn a snapshot (and the one before it, for rates) into statuses.

    Args:
        snap: :meth:`NodeStats.snapshot` now.
        previous: The snapshot of the previous period (None for the first).
        period_s: Seconds between the two snapshots.
        node_name: Fully qualified node name (status name prefix).
        runtime: Backend description (``EncoderInfo`` text) or why there is none.
        active: Whether the node is active.

    Returns:
        The node's status first, then one per camera.
    """
    prev_cams = previous["cameras"] if previous else {}
    dt = max(period_s, 1e-9)
    statuses = [_node_status(snap, previous, node_name, runtime, active)]
    stall = snap.get("tracking_busy")
    for cam, c in snap["cameras"].items():
        p = prev_cams.get(cam, CameraCounters())
        level, message = _camera_level(cam, c, p, stall)
        rate_in = (c.received - p.received) / dt if previous else float("nan")
        rate_out = (c.processed - p.processed) / dt if previous else float("nan")
        statuses.append(
            StatusSummary(
                name=f"{node_name}: camera {cam}",
                level=level,
                message=message,
                values=(
                    ("rate_in_hz", f"{rate_in:.2f}"),
                    ("rate_out_hz", f"{rate_out:.2f}"),
                    ("received", str(c.received)),
                    ("processed", str(c.processed)),
                    ("dropped", str(c.dropped)),
                    ("ignored_inactive", str(c.ignored)),
                    ("stopped_unprocessed", str(c.stopped)),
                    ("in_flight", str(c.in_flight)),
                    ("resets", str(sum(c.resets.values()))),
                    ("resets_by_reason", _counter_text(c.resets)),
                    ("rejected", str(sum(c.rejected.values()))),
                    ("rejected_by_cause", _counter_text(c.rejected)),
                    ("skipped_by_reason", _counter_text(c.skipped)),
                    ("lost_in_transport", str(c.lost)),
                    ("lost_source", "estimate (stamp gaps)" if c.lost_estimated else "rmw event"),
                    ("overwritten_in_queue", str(c.overwritten)),
                    ("missing_from_stamps", str(c.missing)),
                    ("lost_before_first_frame", str(c.lost_before_first)),
                    ("published_estimate", str(c.published)),
                ),
            )
        )
    return statuses


def _node_level(snap: Snapshot, active: bool) -> tuple[int, str]:
    """Level and message of the node's status."""
    errors = snap.get("errors", {})
    stall = snap.get("tracking_busy")
    if not active:
        return WARN, "inactive (no runtime loaded)"
    if "inference_thread_died" in errors:
        return ERROR, "the inference thread stopped (see the log)"
    if "tracking_thread_died" in errors:
        return ERROR, "the tracking thread stopped: no tracks (see the log)"
    if stall is not None and stall[1] >= TRACKING_STALL_S:
        return (
            ERROR,
            f"tracking stalled: camera {stall[0]}'s tracker has been on one frame for "
            f"{stall[1]:.0f} s; no tracks or debug images meanwhile",
        )
    if snap["qos"]:
        return WARN, f"incompatible QoS on {len(snap['qos'])} topic(s)"
    return OK, "active"


def _node_status(
    snap: Snapshot, previous: Snapshot | None, node_name: str, runtime: str, active: bool
) -> StatusSummary:
    """The ``<node>: node`` status: runtime, step latency, batch size, QoS, errors."""
    lat = np.asarray(snap["latency"], dtype=np.float64) * 1e3
    p50 = float(np.percentile(lat, 50)) if lat.size else float("nan")
    p99 = float(np.percentile(lat, 99)) if lat.size else float("nan")
    batches = snap["batch_sizes"]
    qos = snap["qos"]
    prev_qos = previous["qos"] if previous else {}
    new_qos = sum(qos.values()) - sum(prev_qos.values())
    level, message = _node_level(snap, active)
    return StatusSummary(
        name=f"{node_name}: node",
        level=level,
        message=message,
        values=(
            ("runtime", runtime),
            ("steps", str(snap["steps"])),
            ("step_latency_p50_ms", f"{p50:.2f}"),
            ("step_latency_p99_ms", f"{p99:.2f}"),
            ("latency_window", str(lat.size)),
            ("mean_batch_size", f"{np.mean(batches):.2f}" if batches else "nan"),
            ("qos_incompatible", _counter_text(qos)),
            ("qos_incompatible_new", str(new_qos)),
            ("errors", _counter_text(snap.get("errors", {}))),
        ),
    )


def _camera_level(
    cam: str, c: CameraCounters, p: CameraCounters, stall: tuple[str, float] | None
) -> tuple[int, str]:
    """Level and message of one camera's status (``c`` now, ``p`` a period ago)."""
    new_rejects = sum(c.rejected.values()) - sum(p.rejected.values())
    new_lost = c.lost - p.lost
    new_non_finite = c.skipped.get("non_finite", 0) - p.skipped.get("non_finite", 0)
    if stall is not None and stall[0] == cam and stall[1] >= TRACKING_STALL_S:
        return ERROR, f"tracker stalled on one frame for {stall[1]:.0f} s"
    if new_non_finite and c.processed == p.processed:
        return (
            ERROR,
            f"nothing processed: all {new_non_finite} frame(s) of the last period gave "
            "non-finite values (check the checkpoint and precision)",
        )
    new_overwritten = c.overwritten - p.overwritten
    if new_overwritten > 0:
        return (
            WARN,
            f"{new_overwritten} frame(s) overwritten in the subscription queue in the last "
            f"period (stamp gaps): {OVERWRITE_HINT}",
        )
    if new_lost > 0:
        how = "estimated from stamp gaps" if c.lost_estimated else "DDS message-lost event"
        return (
            WARN,
            f"{new_lost} frame(s) lost in transport in the last period ({how}): {LOSS_HINT}",
        )
    if new_rejects:
        return WARN, f"{new_rejects} input(s) rejected in the last period"
    if c.received == 0:
        return OK, "no input yet"
    return OK, "ok"


def to_diagnostic_array(statuses: list[StatusSummary], stamp: Time) -> DiagnosticArray:
    """Build a ``diagnostic_msgs/DiagnosticArray`` (``stamp``: a ``builtin_interfaces/Time``)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    arr = DiagnosticArray()
    arr.header.stamp = stamp
    for s in statuses:
        st = DiagnosticStatus()
        st.level = bytes([s.level])
        st.name = s.name
        st.message = s.message
        st.hardware_id = HARDWARE_ID
        st.values = [KeyValue(key=k, value=v) for k, v in s.values]
        arr.status.append(st)
    return arr
