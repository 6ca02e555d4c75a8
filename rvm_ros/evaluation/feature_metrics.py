"""Checks of a dense feature map, as pure functions of feature arrays (numpy, no model).

Shapes: U units (shots or sequences), T frames, N = h*w cells (row-major), C channels.
Every function takes features of any source (a model's recurrent output, raw pixel
patches, a position-only map), so the same numbers compare models and baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DISPLACEMENT_BUCKETS",
    "CorrespondenceCounts",
    "LabelCounts",
    "VarianceShares",
    "cell_correspondence",
    "cell_labels",
    "label_propagation",
    "stability",
    "variance_decomposition",
]

# Displacement buckets of the correspondence check, in cells: [low, high).
DISPLACEMENT_BUCKETS: tuple[tuple[float, float], ...] = (
    (0.0, 1.0),
    (1.0, 2.0),
    (2.0, 3.0),
    (3.0, 5.0),
    (5.0, float("inf")),
)


@dataclass(frozen=True)
class VarianceShares:
    """Shares of the feature variance (they sum to 1).

    Attributes:
        position: Explained by the cell position alone (the per-cell mean over all units).
        content: Explained by the unit at that cell beyond position (what a scene shows).
        time: Change over time within a unit at a cell.
        units: Units the decomposition used (with U units a map without any position
            component still shows a position share of about 1/U: the per-cell mean of U
            unrelated scenes is not zero).
        position_corrected: ``position`` minus that floor as estimated from the content
            term (``content / (U - 1)``: the per-cell mean carries 1/U of the between-unit
            variance), at least 0. Not part of the sum; use it to compare runs with few units.
    """

    position: float
    content: float
    time: float
    units: int
    position_corrected: float = 0.0


def variance_decomposition(features: Sequence[np.ndarray]) -> VarianceShares:
    """Split the variance of feature maps into position, content and time (nested ANOVA).

    With ``f[u, t, n]`` the feature of cell ``n`` at frame ``t`` of unit ``u``, ``m[u, n]``
    its mean over time, ``p[n]`` the mean of ``m`` over units and ``g`` the mean of ``p``
    over cells (every unit weighs the same, whatever its length):
    position = mean_n |p - g|^2, content = mean_{u,n} |m - p|^2, time = mean_{u,t,n}
    |f - m|^2; the three add up to the total mean_{u,t,n} |f - g|^2.

    Args:
        features: One ``[T_u, N, C]`` array per unit (same N and C).

    Returns:
        The shares.

    Raises:
        ValueError: Fewer than two units, or mismatched cells / channels.
    """
    if len(features) < 2:
        raise ValueError("the variance decomposition needs at least two units")
    shape = features[0].shape[1:]
    if any(f.ndim != 3 or f.shape[1:] != shape or f.shape[0] < 1 for f in features):
        raise ValueError("every unit must be [T, N, C] with the same N and C")
    means = np.stack([f.astype(np.float64).mean(0) for f in features])  # [U, N, C]
    cell = means.mean(0)  # [N, C]
    grand = cell.mean(0)  # [C]
    position = float(((cell - grand) ** 2).sum(-1).mean())
    content = float(((means - cell) ** 2).sum(-1).mean())
    time = float(
        np.mean(
            [
                ((f.astype(np.float64) - m) ** 2).sum(-1).mean()
                for f, m in zip(features, means, strict=False)
            ]
        )
    )
    total = position + content + time
    units = len(features)
    if total <= 0:
        return VarianceShares(1.0, 0.0, 0.0, units, 1.0)
    corrected = max(0.0, position - content / (units - 1)) / total
    return VarianceShares(position / total, content / total, time / total, units, corrected)


@dataclass
class CorrespondenceCounts:
    """Nearest-neighbour hits and trials per displacement bucket.

    Attributes:
        hits: ``[len(DISPLACEMENT_BUCKETS)]`` correct top-1 matches.
        trials: ``[len(DISPLACEMENT_BUCKETS)]`` cells evaluated.
    """

    hits: np.ndarray
    trials: np.ndarray

    @classmethod
    def zeros(cls) -> CorrespondenceCounts:
        """Empty counts."""
        n = len(DISPLACEMENT_BUCKETS)
        return cls(np.zeros(n, np.int64), np.zeros(n, np.int64))

    def add(self, other: CorrespondenceCounts) -> None:
        """Accumulate ``other``."""
        self.hits += other.hits
        self.trials += other.trials

    def top1(self) -> list[float | None]:
        """Top-1 per bucket (None where nothing was evaluated)."""
        return [float(h / t) if t else None for h, t in zip(self.hits, self.trials, strict=False)]

    def top1_from(self, cells: float) -> float | None:
        """Top-1 over every bucket starting at ``cells`` or more."""
        keep = np.array([lo >= cells for lo, _ in DISPLACEMENT_BUCKETS])
        t = int(self.trials[keep].sum())
        return float(self.hits[keep].sum() / t) if t else None


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, C] x [M, C] -> [N, M]`` cosine similarities."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    out: np.ndarray = a @ b.T
    return out


def cell_correspondence(
    reference: np.ndarray,
    target: np.ndarray,
    target_to_reference: np.ndarray,
    grid: tuple[int, int],
    patch: int,
) -> CorrespondenceCounts:
    """Top-1 nearest-neighbour matching of a target frame's cells into a reference frame.

    A target cell is correct when its most similar reference cell (cosine) is the cell that
    holds the target cell's centre mapped through the exact motion. Cells whose centre
    leaves the reference view are not counted. The displacement of a cell is the distance
    (in cells) between its centre and the mapped centre.

    Args:
        reference: ``[N, C]`` features of the reference frame.
        target: ``[N, C]`` features of the target frame.
        target_to_reference: ``[3, 3]`` homography from target pixels to reference pixels
            (continuous coordinates: pixel ``(r, c)`` has its centre at ``(c + 0.5, r + 0.5)``).
        grid: ``(h, w)`` cells.
        patch: Cell side in pixels.

    Returns:
        The counts.
    """
    h, w = grid
    ys, xs = np.meshgrid((np.arange(h) + 0.5) * patch, (np.arange(w) + 0.5) * patch, indexing="ij")
    centres = np.stack([xs.ravel(), ys.ravel()], -1)  # [N, 2] (x, y)
    hom = np.concatenate([centres, np.ones((h * w, 1))], -1) @ target_to_reference.T
    mapped = hom[:, :2] / hom[:, 2:3]  # [N, 2]
    inside = (
        (mapped[:, 0] >= 0)
        & (mapped[:, 0] < w * patch)
        & (mapped[:, 1] >= 0)
        & (mapped[:, 1] < h * patch)
        & (hom[:, 2] > 0)
    )
    col = np.clip(np.floor(mapped[:, 0] / patch), 0, w - 1).astype(np.int64)
    row = np.clip(np.floor(mapped[:, 1] / patch), 0, h - 1).astype(np.int64)
    truth = row * w + col
    moved = np.linalg.norm(mapped - centres, axis=-1) / patch  # [N] cells
    best = _cosine(target, reference).argmax(-1)  # [N]
    counts = CorrespondenceCounts.zeros()
    for i, (lo, hi) in enumerate(DISPLACEMENT_BUCKETS):
        sel = inside & (moved >= lo) & (moved < hi)
        counts.trials[i] += int(sel.sum())
        counts.hits[i] += int((best[sel] == truth[sel]).sum())
    return counts


def stability(features: Sequence[np.ndarray], lag: int = 1) -> tuple[float, float]:
    """How little features of static content change over time, relative to scene changes.

    Each unit shows one static scene (sensor noise only). The change of a cell's feature
    over ``lag`` frames (and from the first to the last frame: drift) is compared with how
    much the same cell differs between scenes: ``1 - E|f[t+lag] - f[t]|^2 / (2 V)`` with
    ``V`` the mean squared distance of a feature from its cell's mean over every unit and
    frame (the variance that is not position). 1: no change at all; 0: as different as
    two unrelated scenes.

    Args:
        features: One ``[T, N, C]`` array per unit (T > lag), at least two units.
        lag: Frames between the compared features.

    Returns:
        ``(stability at lag, stability first -> last frame)``.

    Raises:
        ValueError: Fewer than two units or too few frames.
    """
    if len(features) < 2 or any(f.shape[0] <= lag for f in features):
        raise ValueError(f"stability needs two units of more than {lag} frames")
    cell = np.mean([f.astype(np.float64).mean(0) for f in features], axis=0)  # [N, C]
    between = float(
        np.mean([((f.astype(np.float64) - cell) ** 2).sum(-1).mean() for f in features])
    )
    if between <= 0:
        return 1.0, 1.0
    step = np.mean(
        [((f[lag:].astype(np.float64) - f[:-lag]) ** 2).sum(-1).mean() for f in features]
    )
    drift = np.mean([((f[-1].astype(np.float64) - f[0]) ** 2).sum(-1).mean() for f in features])
    return 1.0 - float(step) / (2 * between), 1.0 - float(drift) / (2 * between)


def cell_labels(mask: np.ndarray, patch: int) -> np.ndarray:
    """Per-cell label of a pixel mask: cells more than half covered. ``[H, W] -> [h*w] bool``."""
    h, w = mask.shape[0] // patch, mask.shape[1] // patch
    cover = mask[: h * patch, : w * patch].reshape(h, patch, w, patch).mean((1, 3))
    out: np.ndarray = (cover > 0.5).ravel()
    return out


@dataclass
class LabelCounts:
    """Pooled confusion counts of the object class.

    Attributes:
        tp: Object cells predicted object.
        fp: Background cells predicted object.
        fn: Object cells predicted background.
        cells: All cells evaluated.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    cells: int = 0

    def add(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        """Accumulate one frame's ``[N]`` bool truth and prediction."""
        self.tp += int((truth & predicted).sum())
        self.fp += int((~truth & predicted).sum())
        self.fn += int((truth & ~predicted).sum())
        self.cells += int(truth.size)

    def iou(self) -> float | None:
        """Object IoU (None when no object cell was seen or predicted)."""
        union = self.tp + self.fp + self.fn
        return self.tp / union if union else None

    def accuracy(self) -> float | None:
        """Fraction of cells labelled right."""
        return (self.cells - self.fp - self.fn) / self.cells if self.cells else None


def label_propagation(
    reference: np.ndarray, labels: np.ndarray, target: np.ndarray, k: int = 3
) -> np.ndarray:
    """Labels of a target frame's cells by majority of their ``k`` most similar reference cells.

    Args:
        reference: ``[N, C]`` reference features.
        labels: ``[N]`` bool reference labels.
        target: ``[M, C]`` target features.
        k: Neighbours (cosine similarity).

    Returns:
        ``[M]`` bool.
    """
    sim = _cosine(target, reference)  # [M, N]
    k = min(k, reference.shape[0])
    nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]  # [M, k]
    votes = labels[nearest].mean(1)
    out: np.ndarray = votes > 0.5
    return out
