"""The point tracker's parameters, validated."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["METHODS", "TrackerConfig"]

METHODS: tuple[str, ...] = ("hybrid", "klt", "propagation")
"""Tracker methods: see :func:`rvm_ros.tracking.factory.create_tracker`."""


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _is_bool(v: object) -> bool:
    return isinstance(v, (bool, np.bool_))


# (field, type check, range check (the value passed the type check), the rule in the error
# message), checked in this order after ``method``.
_RULES: tuple[tuple[str, Callable[[object], bool], Callable[[float], bool], str], ...] = (
    (
        "max_side",
        _is_int,
        lambda v: v == 0 or 64 <= v <= 16384,
        "must be 0 or an integer in [64, 16384]",
    ),
    (
        "lk_window",
        _is_int,
        lambda v: 5 <= v <= 63 and v % 2 == 1,
        "must be an odd integer in [5, 63]",
    ),
    ("lk_levels", _is_int, lambda v: 0 <= v <= 6, "must be an integer in [0, 6]"),
    ("fb_threshold", _is_real, lambda v: 0 < v < math.inf, "must be a finite number > 0 pixels"),
    ("template_radius", _is_int, lambda v: 2 <= v <= 16, "must be an integer in [2, 16]"),
    ("search_radius", _is_real, lambda v: 0 <= v <= 64, "must be in [0, 64] pixels"),
    ("feature_weight", _is_real, lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("feature_relocalise", _is_bool, lambda _v: True, "must be true or false"),
    ("n_context", _is_int, lambda v: v >= 0, "must be an integer ≥ 0"),
    ("topk", _is_int, lambda v: v >= 1, "must be an integer ≥ 1"),
    ("temperature", _is_real, lambda v: 0 < v < math.inf, "must be a finite number > 0"),
    (
        "radius",
        _is_real,
        lambda v: not math.isnan(v) and v >= 0,
        "must be ≥ 0 cells (0 or inf: unrestricted)",
    ),
    ("visibility_threshold", _is_real, lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ("label_sigma", _is_real, lambda v: 0 < v < math.inf, "must be a finite number > 0 cells"),
)


@dataclass(frozen=True)
class TrackerConfig:
    """Point-tracker settings.

    ``method`` picks the tracker (:data:`METHODS`): ``hybrid`` (pyramidal Lucas-Kanade for
    sub-pixel motion; template and RVM-feature appearance for visibility and re-detection;
    a motion prior from the other points while a point is hidden), ``klt`` (Lucas-Kanade
    with a forward-backward check only) or ``propagation`` (label propagation over the RVM
    feature grid; the label-propagation fields below, defaults: the RVM evaluation
    notebook's).

    Attributes:
        method: one of :data:`METHODS`.
        max_side: ``hybrid``, ``klt``: the trackers work on the grey camera image, area-
            downscaled so that its long side is at most this many pixels (0: always at
            the camera's resolution). 640 keeps a VGA camera at full resolution and bounds
            the cost on larger ones (64-16384 or 0).
        lk_window: side in pixels of the Lucas-Kanade window (odd, 5-63).
        lk_levels: pyramid levels above the full-resolution image (0-6).
        fb_threshold: forward-backward error in pixels of the tracking image (the camera
            image, downscaled to ``max_side``) above which a Lucas-Kanade step is rejected
            (> 0).
        template_radius: half-size in pixels of the appearance template kept per point
            (``hybrid``; 2-16).
        search_radius: how far in pixels around its predicted position a hidden or lost
            point is searched for (``hybrid``; 0-64).
        feature_weight: weight in [0, 1] of the RVM-feature similarity in a ``hybrid``
            point's confidence (the rest is template correlation).
        feature_relocalise: ``hybrid``: when the frame's motion cannot be estimated from
            the tracked points (after a reset, e.g. a gap in the stream, or when too few
            points were tracked), find the points again by matching their RVM features
            over the whole feature grid, fit the camera motion to those matches and search
            each point's templates around it.
        n_context: recent frames kept as context besides each point's query frame (≥ 0).
        temperature: softmax temperature applied to cosine similarities (> 0).
        topk: context cells each target cell draws its label from (≥ 1).
        radius: neighbourhood radius in cells; a target cell only draws from context cells
            within this distance. ``0`` or ``inf`` means unrestricted. Unlike the
            evaluation notebook (where the mask is computed but dropped), it is applied.
        visibility_threshold: a point is visible when its confidence is at least this
            (``hybrid``: the appearance score; ``klt``: ``1 - fb_error / (2 fb_threshold)``;
            ``propagation``: relative peak of its propagated heatmap, see
            :class:`PointTracker`). The default 0.6 was chosen for ``hybrid`` (issue 21,
            docs/BENCHMARKS.md: on the development benchmark at 256x256 and 640x480 it
            hides more points that slid onto the wrong content than 0.5 and costs nothing
            on camera-only motion; 0.7 loses correct points).
        label_sigma: standard deviation in cells of the Gaussian label map drawn around a
            query point (peak normalised to 1). The default 0.5 keeps the label on the
            query cell and its direct neighbours (0.14 there), so little of it leaks onto
            the background around the point; soft-argmax still gives sub-cell positions.
    """

    method: str = "hybrid"
    max_side: int = 640
    lk_window: int = 21
    lk_levels: int = 2
    fb_threshold: float = 1.0
    template_radius: int = 8
    search_radius: float = 8.0
    feature_weight: float = 0.2
    feature_relocalise: bool = False
    n_context: int = 20
    temperature: float = 0.7
    topk: int = 7
    radius: float = 20.0
    visibility_threshold: float = 0.6
    label_sigma: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"TrackerConfig.method must be one of {', '.join(METHODS)}, got {self.method!r}"
            )
        for name, kind, in_range, rule in _RULES:
            value = getattr(self, name)
            if not (kind(value) and in_range(value)):
                raise ValueError(f"TrackerConfig.{name} {rule}, got {value!r}")

    @property
    def restricted(self) -> bool:
        """True when the neighbourhood radius limits propagation."""
        return 0 < self.radius < math.inf
