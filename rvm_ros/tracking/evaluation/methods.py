"""The methods ``rvm-ros eval-tracking`` compares, and one method's run over a sequence.

Every method sees the same full-resolution frames and query points; positions are
continuous pixels of the frames. The RVM features (for the methods that read them) are
the network's, computed on the frames resized to the network input as the node does;
their grid tiles the whole frame. Time is measured around each method's per-frame update
only (the model step that produces the features is not counted), wall clock, in the
calling thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.evaluation.baselines import (
    OpenCvLkBaseline,
    StaticBaseline,
    raw_pixel_features,
)
from rvm_ros.tracking.evaluation.sequence import TrackingSequence
from rvm_ros.tracking.factory import Tracker, create_tracker
from rvm_ros.tracking.state import TrackState

__all__ = ["FEATURE_METHODS", "METHODS", "MethodRun", "MethodTracker", "run_method"]

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
"""The methods that read the RVM features."""

_PACKAGE_METHODS = ("hybrid", "klt", "propagation", "raw_propagation")


class MethodTracker(Protocol):
    """What a method's run drives: the package's trackers and the references alike."""

    needs_features: bool

    def add_queries(self, xy: np.ndarray, ids: np.ndarray, /) -> None:
        """Start points (continuous pixels) on the next frame."""

    def update(self, image: np.ndarray, features: np.ndarray | None = None, /) -> TrackState:
        """Track every point into a new frame (``features``: what the method reads)."""


@dataclass
class MethodRun:
    """One method's predictions on one sequence."""

    xy: np.ndarray  # [P, T, 2]
    visible: np.ndarray  # [P, T]
    ms: np.ndarray  # [T] update time per frame


def _package_tracker(method: str, config: TrackerConfig) -> Tracker | None:
    """The package's tracker behind ``method`` (``None`` for a reference method)."""
    if method in ("hybrid", "klt", "propagation"):
        return create_tracker(replace(config, method=method))
    if method == "raw_propagation":
        return create_tracker(replace(config, method="propagation"))
    return None


def _reference(method: str) -> MethodTracker:
    if method == "opencv_lk_fb":
        return OpenCvLkBaseline()
    if method == "static":
        return StaticBaseline()
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def _frame_features(
    method: str, tracker: MethodTracker, frame: np.ndarray, features: np.ndarray | None, t: int
) -> np.ndarray | None:
    """What ``method``'s tracker reads besides ``frame`` (frame ``t``): its RVM features
    ``features[t]``, raw pixel cells for ``raw_propagation``, nothing for the others."""
    if method == "raw_propagation":  # 16-pixel cells up to 256 px, about 16 cells above
        cell = max(16, round(max(frame.shape[:2]) / 16))
        return raw_pixel_features(frame, cell)
    if tracker.needs_features:
        if features is None:
            raise ValueError(f"method {method!r} needs RVM features")
        return np.asarray(features[t])
    return None


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
    package = _package_tracker(method, cfg)
    tracker: MethodTracker = package if package is not None else _reference(method)
    num_p, num_t = seq.gt_xy.shape[:2]
    xy = np.zeros((num_p, num_t, 2))
    vis = np.zeros((num_p, num_t), bool)
    ms = np.zeros(num_t)
    q_xy = seq.query_xy
    for t in range(num_t):
        frame = seq.frames[t]
        if package is not None and t in seq.resets:  # the node resets on a stream gap
            package.reset()
        new = np.flatnonzero(seq.query_frames == t)
        if new.size:
            tracker.add_queries(q_xy[new].astype(np.float32), new.astype(np.int32))
        feats = _frame_features(method, tracker, frame, features, t)
        t0 = time.perf_counter()
        state = tracker.update(frame, feats)
        ms[t] = (time.perf_counter() - t0) * 1e3
        xy[state.ids, t] = state.xy
        vis[state.ids, t] = state.visible
    return MethodRun(xy=xy, visible=vis, ms=ms)
