"""TAP-Vid point-tracking metrics (Doersch et al., "TAP-Vid", NeurIPS 2022).

Implemented from the benchmark's published definitions:

* Positions are rescaled to a 256x256 image before distances are taken, so the pixel
  thresholds ``{1, 2, 4, 8, 16}`` mean the same on every video size.
* A point is evaluated only on the frames after its query frame (the ``"first"`` query
  mode; ``"strided"`` evaluates every frame except the query frame).
* ``occlusion_accuracy``: fraction of evaluated (point, frame) pairs whose predicted
  visibility equals the ground truth.
* ``pts_within_d``: among evaluated pairs whose ground truth is *visible*, the fraction whose
  predicted position lies strictly closer than ``d`` pixels (predicted visibility ignored).
  ``average_pts_within_thresh`` (δ^x_avg) is their mean over the five thresholds.
* ``jaccard_d`` = TP / (TP + FP + FN) with
  TP = predicted visible & ground truth visible & within ``d``;
  FP = predicted visible & (ground truth occluded or beyond ``d``);
  FN = ground truth visible & (predicted occluded or beyond ``d``).
  A visible prediction that is too far away is therefore both a FP and a FN.
  ``average_jaccard`` (AJ) is the mean over the five thresholds.

Every metric pools all evaluated (point, frame) pairs of one video; the benchmark's
dataset-level numbers are the mean of the per-video numbers (:func:`average_metrics`).
A metric with nothing to count (e.g. no visible ground truth after the query frames)
is ``nan`` rather than a number that looks meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "EVAL_SIZE",
    "QUERY_MODES",
    "THRESHOLDS",
    "average_metrics",
    "evaluation_mask",
    "metric_names",
    "tapvid_metrics",
]

THRESHOLDS: tuple[int, ...] = (1, 2, 4, 8, 16)
"""Distance thresholds in pixels of the 256x256 evaluation frame."""

EVAL_SIZE: int = 256
"""Side of the square frame that positions are rescaled to before thresholds apply."""

QUERY_MODES: tuple[str, ...] = ("first", "strided")


def metric_names() -> list[str]:
    """Names of the keys :func:`tapvid_metrics` returns, in a stable order."""
    names = ["occlusion_accuracy"]
    names += [f"pts_within_{d}" for d in THRESHOLDS]
    names.append("average_pts_within_thresh")
    names += [f"jaccard_{d}" for d in THRESHOLDS]
    names.append("average_jaccard")
    return names


def _as_array(name: str, value: object, dtype: type, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if dtype is bool:
        if arr.dtype != np.bool_:
            raise ValueError(f"{name} must be boolean, got dtype {arr.dtype}")
        return arr
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _first_bad(mask: np.ndarray) -> str:
    p, t = np.argwhere(mask)[0]
    return f"point {int(p)}, frame {int(t)}"


def evaluation_mask(
    query_frames: np.ndarray, num_frames: int, query_mode: str = "first"
) -> np.ndarray:
    """Which (point, frame) pairs are evaluated.

    Args:
        query_frames: int ``[P]``, the frame each point was queried on.
        num_frames: T, the number of frames.
        query_mode: ``"first"`` (frames after the query frame) or ``"strided"``
            (every frame but the query frame).

    Returns:
        bool ``[P, T]``.
    """
    if query_mode not in QUERY_MODES:
        raise ValueError(f"query_mode must be one of {QUERY_MODES}, got {query_mode!r}")
    frames = np.arange(num_frames)[None, :]  # [1, T]
    q = np.asarray(query_frames)[:, None]  # [P, 1]
    if query_mode == "first":
        return np.asarray(frames > q)
    return np.asarray(frames != q)


def tapvid_metrics(
    gt_xy: np.ndarray,
    gt_visible: np.ndarray,
    pred_xy: np.ndarray,
    pred_visible: np.ndarray,
    query_frames: np.ndarray | Sequence[int] | None,
    image_size: tuple[int, int],
    query_mode: str = "first",
) -> dict[str, float]:
    """TAP-Vid metrics of one video.

    Args:
        gt_xy: ``[P, T, 2]`` ground-truth positions ``(x, y)`` in pixels of an image of
            ``image_size``. Only entries where ``gt_visible`` is true are read.
        gt_visible: bool ``[P, T]``, true where the point is visible.
        pred_xy: ``[P, T, 2]`` predicted positions in the same pixel frame.
        pred_visible: bool ``[P, T]``, predicted visibility.
        query_frames: int ``[P]`` query frame of each point, or ``None`` to use each
            point's first visible frame (how TAP-Vid's "first" mode picks queries).
        image_size: ``(H, W)`` of the frames the positions refer to; positions are
            rescaled to 256x256 (``x * 256 / W``, ``y * 256 / H``).
        query_mode: ``"first"`` (default; evaluate frames after the query frame) or
            ``"strided"`` (evaluate every frame except the query frame).

    Returns:
        ``{name: value}`` for the names of :func:`metric_names`, as Python floats
        (``nan`` where a metric has nothing to count).

    Raises:
        ValueError: inconsistent shapes, non-boolean visibility, a query frame out of
            range, a point never visible when ``query_frames`` is ``None``, a bad
            ``image_size``, or a non-finite position where it would be used.
    """
    gt, pred, gt_vis, pred_vis = _checked_inputs(gt_xy, gt_visible, pred_xy, pred_visible)
    height, width = _checked_size(image_size)
    queries = _checked_queries(query_frames, gt_vis)
    evaluated = evaluation_mask(queries, gt.shape[1], query_mode)  # [P, T]
    scored = evaluated & gt_vis  # pairs whose position is scored
    for name, arr in (("gt_xy", gt), ("pred_xy", pred)):
        bad = scored & ~np.isfinite(arr).all(axis=-1)
        if bad.any():
            raise ValueError(
                f"{name} is not finite at {_first_bad(bad)} where the ground truth is visible"
            )

    scale = np.array([EVAL_SIZE / width, EVAL_SIZE / height])
    # Occluded entries may hold anything (nan included): zero them before the arithmetic.
    diff = np.where(scored[..., None], (pred - gt) * scale, 0.0)  # [P, T, 2] in 256-px units
    dist2 = np.sum(diff * diff, axis=-1)  # [P, T]
    results = _scores(evaluated, scored, gt_vis, pred_vis, dist2)
    return {name: results[name] for name in metric_names()}


def _checked_inputs(
    gt_xy: np.ndarray, gt_visible: np.ndarray, pred_xy: np.ndarray, pred_visible: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(gt [P, T, 2], pred [P, T, 2])`` as float64 and the two visibilities, their shapes
    checked against ``gt_xy``'s."""
    gt = _as_array("gt_xy", gt_xy, float, 3)
    pred = _as_array("pred_xy", pred_xy, float, 3)
    gt_vis = _as_array("gt_visible", gt_visible, bool, 2)
    pred_vis = _as_array("pred_visible", pred_visible, bool, 2)
    if gt.shape[-1] != 2:
        raise ValueError(f"gt_xy must have shape [P, T, 2], got {gt.shape}")
    for name, arr in (("pred_xy", pred), ("gt_visible", gt_vis), ("pred_visible", pred_vis)):
        want = gt.shape if arr.ndim == 3 else gt.shape[:2]
        if arr.shape != want:
            raise ValueError(f"{name} has shape {arr.shape}, expected {want} (from gt_xy)")
    return gt, pred, gt_vis, pred_vis


def _checked_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """``(H, W)``, two positive integers."""
    if len(image_size) != 2:
        raise ValueError(f"image_size must be (H, W), got {image_size!r}")
    height, width = image_size
    if not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
        for v in (height, width)
    ):
        raise ValueError(f"image_size must be two positive integers (H, W), got {image_size!r}")
    return height, width


def _checked_queries(
    query_frames: np.ndarray | Sequence[int] | None, gt_vis: np.ndarray
) -> np.ndarray:
    """int ``[P]`` query frames: as given (checked), or each point's first visible frame."""
    num_points, num_frames = gt_vis.shape
    if query_frames is None:
        never = ~gt_vis.any(axis=1)
        if never.any():
            bad = np.flatnonzero(never).tolist()
            raise ValueError(
                f"query_frames=None needs every point visible at least once; "
                f"points {bad} are never visible"
            )
        return np.asarray(np.argmax(gt_vis, axis=1))
    queries = np.asarray(query_frames)
    if queries.shape != (num_points,):
        raise ValueError(f"query_frames must have shape ({num_points},), got {queries.shape}")
    if not np.issubdtype(queries.dtype, np.integer):
        raise ValueError(f"query_frames must be integers, got dtype {queries.dtype}")
    out = (queries < 0) | (queries >= num_frames)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(
            f"query_frames[{i}] = {int(queries[i])} is outside the {num_frames} frames"
        )
    return queries


def _ratio(num: int, den: int) -> float:
    return float(num) / float(den) if den > 0 else math.nan


def _scores(
    evaluated: np.ndarray,
    scored: np.ndarray,
    gt_vis: np.ndarray,
    pred_vis: np.ndarray,
    dist2: np.ndarray,
) -> dict[str, float]:
    """Every metric from the evaluated and scored pairs and the squared distances
    ``[P, T]`` (in 256-px units)."""
    results: dict[str, float] = {}
    n_eval = int(evaluated.sum())
    results["occlusion_accuracy"] = _ratio(int((evaluated & (gt_vis == pred_vis)).sum()), n_eval)
    n_scored = int(scored.sum())
    pts_within: list[float] = []
    jaccards: list[float] = []
    for d in THRESHOLDS:
        within = scored & (dist2 < float(d) ** 2)
        pts_within.append(_ratio(int(within.sum()), n_scored))
        tp = int((within & pred_vis).sum())
        fp = int((evaluated & pred_vis & ~within).sum())
        fn = int((scored & ~(within & pred_vis)).sum())
        jaccards.append(_ratio(tp, tp + fp + fn))
        results[f"pts_within_{d}"] = pts_within[-1]
        results[f"jaccard_{d}"] = jaccards[-1]
    results["average_pts_within_thresh"] = float(np.mean(pts_within))
    results["average_jaccard"] = float(np.mean(jaccards))
    return results


def average_metrics(per_video: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Dataset-level TAP-Vid numbers: the mean of per-video metrics.

    Videos where a metric is ``nan`` (nothing to count) are left out of that metric's
    mean; a metric that is ``nan`` on every video stays ``nan``.

    Args:
        per_video: results of :func:`tapvid_metrics`, one per video.

    Returns:
        ``{name: mean}`` over the videos.

    Raises:
        ValueError: no videos, or a result missing one of the metric names.
    """
    videos = list(per_video)
    if not videos:
        raise ValueError("average_metrics needs at least one video's metrics")
    out: dict[str, float] = {}
    for name in metric_names():
        values = []
        for i, video in enumerate(videos):
            if name not in video:
                raise ValueError(f"metrics of video {i} have no {name!r}")
            values.append(float(video[name]))
        finite = [v for v in values if not math.isnan(v)]
        out[name] = float(np.mean(finite)) if finite else math.nan
    return out
