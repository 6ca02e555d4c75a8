"""Score tracker methods on sequences with ground truth (TAP-Vid metrics).

Each method runs through :func:`~rvm_ros.tracking.evaluation.methods.run_method`; its
metrics are the mean over the sequences of per-sequence TAP-Vid metrics, with its update
time per frame beside them.

Besides all points, each sequence's named point subsets (``objects``: on objects /
background) and its **re-appearing** points are scored on their own: a point hidden
inside the view (occluded) and visible again later, scored from the frame it re-appears
on (TAP-Vid "first" mode with that frame's predecessor as its query frame).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.evaluation.methods import FEATURE_METHODS, METHODS, MethodRun, run_method
from rvm_ros.tracking.evaluation.sequence import TrackingSequence
from rvm_ros.tracking.evaluation.tapvid import average_metrics, tapvid_metrics

__all__ = [
    "REAPPEARING",
    "Features",
    "MethodMetrics",
    "SplitMetrics",
    "evaluate_sequences",
    "reappearing",
]

REAPPEARING = "re-appearing"
"""Name of the subset of points that are occluded and visible again (see the module)."""

Features = Callable[[TrackingSequence], np.ndarray]
"""``sequence -> float32 [T, h, w, C]`` RVM patch features of its frames."""

MethodMetrics = dict[str, float | dict[str, dict[str, float]]]
"""One method's metrics over a split: every TAP-Vid metric, ``ms_per_frame``, ``ms_p95``,
``sequences``, and ``subsets`` (``{subset name: {TAP-Vid metric or "sequences": value}}``)."""

SplitMetrics = dict[str, MethodMetrics]
"""``{method: its metrics}`` over one split."""


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
) -> SplitMetrics:
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
    return {m: _summary(per[m], sub[m], times[m]) for m in methods}


def _summary(
    per: list[dict[str, float]],
    sub: dict[str, list[dict[str, float]]],
    times: list[np.ndarray],
) -> MethodMetrics:
    """One method's metrics from its per-sequence results and update times."""
    metrics: MethodMetrics = dict(average_metrics(per))
    all_ms = np.concatenate(times) if times else np.zeros(0)
    metrics["ms_per_frame"] = float(np.mean(all_ms)) if all_ms.size else float("nan")
    metrics["ms_p95"] = float(np.percentile(all_ms, 95)) if all_ms.size else float("nan")
    metrics["sequences"] = len(per)
    metrics["subsets"] = {
        name: {**average_metrics(v), "sequences": len(v)} for name, v in sub.items()
    }
    return metrics
