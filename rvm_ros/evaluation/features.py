"""`rvm-ros eval-features`: does a feature map describe the scene or the grid?

For every feature source (checkpoints, the same architecture with random weights, raw pixel
patches), in one run on the same frames:

- variance decomposition (position / content / time) of the recurrent features of video
  shots (after a warm-up, as the node publishes them);
- cell correspondence under camera motion of several cells, with the exact ground truth of
  the tracking benchmark's warps (:mod:`rvm_ros.tracking.evaluation.splits`, ``plain`` split);
- stability on static content (the benchmark with a still camera: sensor noise only);
- nearest-neighbour label propagation of the benchmark's object masks (``occluder`` split);
- frames for a PCA picture (:mod:`rvm_ros.evaluation.feature_report`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rvm_ros.evaluation.feature_metrics import (
    DISPLACEMENT_BUCKETS,
    CorrespondenceCounts,
    LabelCounts,
    cell_correspondence,
    cell_labels,
    label_propagation,
    stability,
    variance_decomposition,
)
from rvm_ros.evaluation.feature_sources import FeatureSource
from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig, TrackingSequence
from rvm_ros.tracking.evaluation.splits import make_sequences

__all__ = ["FeatureEvalSettings", "SourceResult", "Unit", "evaluate_features"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Unit:
    """One stretch of video without a cut: a unit of the variance decomposition.

    Attributes:
        name: ``<video or bag topic>#<shot>``.
        frames: uint8 ``[T, H, W, 3]`` at the model's input size.
    """

    name: str
    frames: np.ndarray


@dataclass(frozen=True)
class FeatureEvalSettings:
    """How much of everything is evaluated.

    Attributes:
        height: Model input height (frames are made at this size).
        width: Model input width.
        warmup: Recurrent steps before features are measured (the state's start is not
            what a running node publishes).
        sequences: Benchmark sequences per check.
        frames: Benchmark frames measured after the warm-up (correspondence and labels).
        static_frames: Frames of the static-content check after the warm-up.
        max_speed: Camera speed of the benchmark (pixels per frame at 256 px).
        seed: Benchmark seed.
        knn: Neighbours of the label propagation.
    """

    height: int = 128
    width: int = 128
    warmup: int = 8
    sequences: int = 8
    frames: int = 40
    static_frames: int = 16
    max_speed: float = 6.0
    seed: int = 0
    knn: int = 3


@dataclass
class SourceResult:
    """Everything measured for one feature source.

    Attributes:
        name: The source's name.
        spec: Where it came from.
        shares: ``{"position", "content", "time", "units"}``.
        correspondence: Counts per displacement bucket.
        stability: ``(1 frame, first -> last frame)``.
        labels: Label propagation counts.
        pca_features: ``[F, N, C]`` features of the picture's frames.
    """

    name: str
    spec: str
    shares: dict[str, float] = field(default_factory=dict)
    correspondence: CorrespondenceCounts = field(default_factory=CorrespondenceCounts.zeros)
    stability: tuple[float, float] = (float("nan"), float("nan"))
    labels: LabelCounts = field(default_factory=LabelCounts)
    pca_features: np.ndarray | None = None

    # Any: JSON-ready report records (nested numbers, lists and names) read back by key.
    def to_dict(self, pixels: SourceResult | None = None) -> dict[str, Any]:
        """JSON-ready metrics (ratios against ``pixels`` where given)."""
        corr = self.correspondence
        far = corr.top1_from(3.0)
        base = pixels.correspondence.top1_from(3.0) if pixels is not None else None
        return {
            "name": self.name,
            "spec": self.spec,
            "variance_shares": self.shares,
            "correspondence": {
                "buckets_cells": [
                    [lo, None if hi == float("inf") else hi] for lo, hi in DISPLACEMENT_BUCKETS
                ],
                "top1": corr.top1(),
                "trials": corr.trials.tolist(),
                "top1_from_3_cells": far,
                "vs_pixels_from_3_cells": far / base if far is not None and base else None,
            },
            "static_stability": {"lag1": self.stability[0], "first_to_last": self.stability[1]},
            "label_propagation": {
                "object_iou": self.labels.iou(),
                "accuracy": self.labels.accuracy(),
                "cells": self.labels.cells,
            },
        }


def _run_batched(source: FeatureSource, frames: np.ndarray, batch: int = 4) -> np.ndarray:
    """``[S, T, H, W, 3]`` -> ``[S, T, N, C]`` in batches of sequences."""
    parts = [source.run(frames[i : i + batch]) for i in range(0, len(frames), batch)]
    return np.concatenate(parts)


def _decomposition(
    source: FeatureSource, units: Sequence[Unit], warmup: int
) -> tuple[dict[str, float], list[np.ndarray]]:
    """Shares, and each unit's measured features ``[T_u - warmup, N, C]``."""
    feats = [source.run(u.frames[None])[0, warmup:] for u in units]
    shares = variance_decomposition(feats)
    return {
        "position": shares.position,
        "content": shares.content,
        "time": shares.time,
        "units": float(shares.units),
        "position_corrected": shares.position_corrected,
    }, feats


def _homography(seq: TrackingSequence, src: int, dst: int) -> np.ndarray:
    """Exact homography from frame ``src`` to frame ``dst`` (fitted to the true tracks)."""
    import cv2

    a = seq.gt_xy[:, src].astype(np.float64)
    b = seq.gt_xy[:, dst].astype(np.float64)
    hom, _ = cv2.findHomography(a, b, 0)
    if hom is None:
        raise ValueError(f"{seq.name}: degenerate ground truth between frames {src} and {dst}")
    return np.asarray(hom)


def _correspondence(
    source: FeatureSource, seqs: Sequence[TrackingSequence], feats: np.ndarray, warmup: int
) -> CorrespondenceCounts:
    counts = CorrespondenceCounts.zeros()
    height, width = seqs[0].image_size
    grid = (height // source.patch, width // source.patch)
    for s, seq in enumerate(seqs):
        for t in range(warmup + 1, len(seq.frames)):
            hom = _homography(seq, t, warmup)
            counts.add(cell_correspondence(feats[s, warmup], feats[s, t], hom, grid, source.patch))
    return counts


def _labels(
    seqs: Sequence[TrackingSequence], feats: np.ndarray, warmup: int, patch: int, knn: int
) -> tuple[LabelCounts, LabelCounts]:
    """Label propagation from each sequence's frame with most object cells to its frames at
    least 4 frames away; also the copy-the-reference-labels baseline (position only)."""
    counts, copy = LabelCounts(), LabelCounts()
    for s, seq in enumerate(seqs):
        assert seq.occluder_mask is not None
        labels = np.stack([cell_labels(m, patch) for m in seq.occluder_mask])  # [T, N]
        frames = range(warmup, len(seq.frames))
        ref = max(frames, key=lambda t: int(labels[t].sum()))
        if not labels[ref].any() or labels[ref].all():
            continue
        for t in frames:
            if abs(t - ref) < 4:
                continue
            pred = label_propagation(feats[s, ref], labels[ref], feats[s, t], knn)
            counts.add(labels[t], pred)
            copy.add(labels[t], labels[ref])
    return counts, copy


def _benchmarks(
    settings: FeatureEvalSettings, sources: list[tuple[str, np.ndarray]]
) -> dict[str, list[TrackingSequence]]:
    s = settings
    common = BenchmarkConfig(seed=s.seed, num_sequences=s.sequences, height=s.height, width=s.width)
    moving = replace(
        common, num_frames=s.warmup + s.frames, max_speed=s.max_speed, occluders=(2, 4)
    )
    still = replace(
        common,
        num_frames=s.warmup + s.static_frames,
        max_speed=0.0,
        max_rotation_deg=0.0,
        max_zoom=1.0,
        perspective=0.0,
        photometric=0.0,
        noise_std=3.0,
    )
    return {
        "plain": make_sequences(moving, "plain", sources),
        "occluder": make_sequences(moving, "occluder", sources),
        "static": make_sequences(still, "plain", sources),
    }


def evaluate_features(
    feature_sources: Sequence[FeatureSource],
    units: Sequence[Unit],
    benchmark_sources: list[tuple[str, np.ndarray]],
    settings: FeatureEvalSettings,
    picture_units: int = 6,
    progress: Progress | None = None,
    # Any: JSON-ready report records (nested numbers, lists and names) read back by key.
) -> tuple[list[SourceResult], dict[str, Any]]:
    """Run every check for every feature source on the same frames.

    Args:
        feature_sources: Models and baselines.
        units: Video shots for the variance decomposition (at least two).
        benchmark_sources: ``(name, RGB image)`` sources of the benchmark's warps.
        settings: Sizes and counts.
        picture_units: The PCA picture shows the last frame of this many shots (spread).
        progress: Called with a short message before each step.

    Returns:
        ``(results, extra)``: per source, and extra report data (the copy-labels baseline,
        what was evaluated).
    """
    say = progress or (lambda _msg: None)
    say("building the benchmark sequences")
    bench = _benchmarks(settings, benchmark_sources)
    w = settings.warmup
    results: list[SourceResult] = []
    copy = LabelCounts()
    pick = sorted(set(np.linspace(0, len(units) - 1, picture_units).round().astype(int).tolist()))
    for source in feature_sources:
        say(f"{source.name}: variance decomposition ({len(units)} shots)")
        res = SourceResult(source.name, source.spec)
        res.shares, unit_feats = _decomposition(source, units, w)
        res.pca_features = np.stack([unit_feats[i][-1] for i in pick])
        say(f"{source.name}: correspondence")
        plain = bench["plain"]
        feats = _run_batched(source, np.stack([q.frames for q in plain]))
        res.correspondence = _correspondence(source, plain, feats, w)
        say(f"{source.name}: static stability")
        static = _run_batched(source, np.stack([q.frames for q in bench["static"]]))[:, w:]
        res.stability = stability(list(static))
        say(f"{source.name}: label propagation")
        occ = bench["occluder"]
        feats = _run_batched(source, np.stack([q.frames for q in occ]))
        res.labels, copy = _labels(occ, feats, w, source.patch, settings.knn)
        results.append(res)
    extra = {
        "copy_reference_labels": {"object_iou": copy.iou(), "accuracy": copy.accuracy()},
        "units": [u.name for u in units],
        "picture_units": [units[i].name for i in pick],
        "picture_frames": np.stack([units[i].frames[-1] for i in pick]),
        "unit_frames": [len(u.frames) for u in units],
        "benchmark_sources": [name for name, _ in benchmark_sources],
    }
    return results, extra
