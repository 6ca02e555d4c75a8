"""Run tracker methods on sequences with ground truth and score them (TAP-Vid metrics).

Every method sees the same full-resolution frames and query points; positions are
continuous pixels of the frames. The RVM features (for the methods that read them) are
the network's, computed on the frames resized to the network input as the node does;
their grid tiles the whole frame. Time is measured around each method's per-frame update
only (the model step that produces the features is not counted), wall clock, in the
calling thread.

Besides all points, each sequence's named point subsets (``objects``: on objects /
background) and its **re-appearing** points are scored on their own: a point hidden
inside the view (occluded) and visible again later, scored from the frame it re-appears
on (TAP-Vid "first" mode with that frame's predecessor as its query frame).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rvm_ros.tracking.baselines import OpenCvLkBaseline, StaticBaseline, raw_pixel_features
from rvm_ros.tracking.benchmark import TrackingSequence
from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.factory import create_tracker
from rvm_ros.tracking.tapvid import average_metrics, tapvid_metrics

__all__ = ["METHODS", "REAPPEARING", "MethodRun", "evaluate_sequences", "reappearing", "run_method"]

REAPPEARING = "re-appearing"
"""Name of the subset of points that are occluded and visible again (see the module)."""

METHODS: tuple[str, ...] = (
    "hybrid",
    "klt",
    "propagation",
    "opencv_lk_fb",
    "raw_propagation",
    "static",
)
"""Methods of ``rvm-ros eval-tracking``: the package's three, then the references."""

FEATURE_METHODS = frozenset({"hybrid", "propagation"})

Features = Callable[[TrackingSequence], np.ndarray]
"""``sequence -> float32 [T, h, w, C]`` RVM patch features of its frames."""


@dataclass
class MethodRun:
    """One method's predictions on one sequence."""

    xy: np.ndarray  # [P, T, 2]
    visible: np.ndarray  # [P, T]
    ms: np.ndarray  # [T] update time per frame


def _make(method: str, config: TrackerConfig) -> Any:
    if method in ("hybrid", "klt", "propagation"):
        return create_tracker(replace(config, method=method))
    if method == "raw_propagation":
        return create_tracker(replace(config, method="propagation"))
    if method == "opencv_lk_fb":
        return OpenCvLkBaseline()
    if method == "static":
        return StaticBaseline()
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def run_method(
    method: str,
    seq: TrackingSequence,
    features: np.ndarray | None,
    config: TrackerConfig | None = None,
) -> MethodRun:
    """Track ``seq``'s query points with ``method``.

    Args:
        method: one of :data:`METHODS`.
        seq: the sequence (queries on their query frames).
        features: ``[T, h, w, C]`` RVM features (needed by ``hybrid`` and ``propagation``).
        config: tracker settings (``method`` is overridden); defaults when ``None``.
    """
    cfg = config if config is not None else TrackerConfig()
    tracker = _make(method, cfg)
    num_p, num_t = seq.gt_xy.shape[:2]
    xy = np.zeros((num_p, num_t, 2))
    vis = np.zeros((num_p, num_t), bool)
    ms = np.zeros(num_t)
    q_xy = seq.query_xy
    package = method in ("hybrid", "klt", "propagation", "raw_propagation")
    for t in range(num_t):
        frame = seq.frames[t]
        if package and t in seq.resets:  # the node resets its trackers on a stream gap
            tracker.reset()
        new = np.flatnonzero(seq.query_frames == t)
        if new.size:
            tracker.add_queries(q_xy[new].astype(np.float32), new.astype(np.int32))
        if method == "raw_propagation":  # 16-pixel cells up to 256 px, about 16 cells above
            cell = max(16, round(max(frame.shape[:2]) / 16))
            feats: np.ndarray | None = raw_pixel_features(frame, cell)
        elif getattr(tracker, "needs_features", False):
            if features is None:
                raise ValueError(f"method {method!r} needs RVM features")
            feats = features[t]
        else:
            feats = None
        t0 = time.perf_counter()
        state = tracker.update(frame, feats)
        ms[t] = (time.perf_counter() - t0) * 1e3
        xy[state.ids, t] = state.xy
        vis[state.ids, t] = state.visible
    return MethodRun(xy=xy, visible=vis, ms=ms)


def reappearing(seq: TrackingSequence) -> tuple[np.ndarray, np.ndarray]:
    """``(rows [R], query frames [R])`` of the points hidden inside the view after their
    query frame and visible again; the query frame is the one before they re-appear."""
    num_t = seq.gt_visible.shape[1]
    h, w = seq.image_size
    x, y = seq.gt_xy[..., 0], seq.gt_xy[..., 1]
    in_view = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    after = np.arange(num_t)[None, :] > seq.query_frames[:, None]
    hidden = after & in_view & ~seq.gt_visible  # occluded inside the view
    rows, frames = [], []
    for p in np.flatnonzero(hidden.any(axis=1)):
        first_hidden = int(np.argmax(hidden[p]))
        back = np.flatnonzero(seq.gt_visible[p, first_hidden:])
        if back.size:
            rows.append(int(p))
            frames.append(first_hidden + int(back[0]) - 1)
    return np.asarray(rows, np.int64), np.asarray(frames, np.int64)


def _subset_metrics(seq: TrackingSequence, run: MethodRun) -> dict[str, dict[str, float]]:
    """TAP-Vid metrics of the sequence's named subsets and of its re-appearing points."""
    out: dict[str, dict[str, float]] = {}
    groups = [(name, np.flatnonzero(mask), seq.query_frames[mask]) for name, mask in seq.subsets]
    rows, queries = reappearing(seq)
    groups.append((REAPPEARING, rows, queries))
    for name, r, q in groups:
        if r.size:
            out[name] = tapvid_metrics(
                seq.gt_xy[r], seq.gt_visible[r], run.xy[r], run.visible[r], q, seq.image_size
            )
    return out


def evaluate_sequences(
    sequences: Sequence[TrackingSequence],
    features: Features | None,
    methods: Sequence[str] = METHODS,
    config: TrackerConfig | None = None,
    keep: Callable[[TrackingSequence, dict[str, MethodRun]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics per method over ``sequences`` (the mean of per-sequence TAP-Vid metrics).

    Args:
        sequences: the sequences (one split).
        features: computes a sequence's RVM features (called once per sequence, only when
            a method needs them).
        methods: which methods.
        config: tracker settings.
        keep: called with each sequence and its runs (e.g. to draw them).

    Returns:
        ``{method: {"average_jaccard", "average_pts_within_thresh", "occlusion_accuracy",
        "ms_per_frame", "ms_p95", ... every TAP-Vid metric, "subsets": {name: metrics}}}``
        (subsets: the sequences' named point groups and ``re-appearing``, each averaged
        over the sequences that have such points).
    """
    per: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    sub: dict[str, dict[str, list[dict[str, float]]]] = {m: {} for m in methods}
    times: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for seq in sequences:
        feats = None
        if features is not None and any(m in FEATURE_METHODS for m in methods):
            feats = features(seq)
        runs: dict[str, MethodRun] = {}
        for m in methods:
            run = run_method(m, seq, feats, config)
            runs[m] = run
            per[m].append(
                tapvid_metrics(
                    seq.gt_xy,
                    seq.gt_visible,
                    run.xy,
                    run.visible,
                    seq.query_frames,
                    seq.image_size,
                )
            )
            for name, v in _subset_metrics(seq, run).items():
                sub[m].setdefault(name, []).append(v)
            times[m].append(run.ms[1:])  # frame 0 only starts the points
        if keep is not None:
            keep(seq, runs)
    out: dict[str, dict[str, Any]] = {}
    for m in methods:
        metrics: dict[str, Any] = dict(average_metrics(per[m]))
        all_ms = np.concatenate(times[m]) if times[m] else np.zeros(0)
        metrics["ms_per_frame"] = float(np.mean(all_ms)) if all_ms.size else float("nan")
        metrics["ms_p95"] = float(np.percentile(all_ms, 95)) if all_ms.size else float("nan")
        metrics["sequences"] = len(per[m])
        metrics["subsets"] = {
            name: {**average_metrics(v), "sequences": len(v)} for name, v in sub[m].items()
        }
        out[m] = metrics
    return out
