"""The point tracker's parameters, validated."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrackerConfig:
    """Label-propagation settings (defaults: the RVM evaluation notebook's).

    Attributes:
        n_context: recent frames kept as context besides each point's query frame (≥ 0).
        temperature: softmax temperature applied to cosine similarities (> 0).
        topk: context cells each target cell draws its label from (≥ 1).
        radius: neighbourhood radius in cells; a target cell only draws from context cells
            within this distance. ``0`` or ``inf`` means unrestricted. Unlike the
            evaluation notebook (where the mask is computed but dropped), it is applied.
        visibility_threshold: a point is visible when its confidence (relative peak of
            its propagated heatmap, see :class:`PointTracker`) is at least this. The
            default 0.5: "at least half of what a perfect re-observation of the query
            would get". On synthetic scenes a visible point scores about 1 and a vanished
            one 0.2-0.3, the rest being label mass that the Gaussian spreads onto the
            background next to the point.
        label_sigma: standard deviation in cells of the Gaussian label map drawn around a
            query point (peak normalised to 1). The default 0.5 keeps the label on the
            query cell and its direct neighbours (0.14 there), so little of it leaks onto
            the background around the point; soft-argmax still gives sub-cell positions.
    """

    n_context: int = 20
    temperature: float = 0.7
    topk: int = 7
    radius: float = 20.0
    visibility_threshold: float = 0.5
    label_sigma: float = 0.5

    def __post_init__(self) -> None:
        def is_int(v: object) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_real(v: object) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

        if not is_int(self.n_context) or self.n_context < 0:
            raise ValueError(
                f"TrackerConfig.n_context must be an integer ≥ 0, got {self.n_context!r}"
            )
        if not is_int(self.topk) or self.topk < 1:
            raise ValueError(f"TrackerConfig.topk must be an integer ≥ 1, got {self.topk!r}")
        if not is_real(self.temperature) or not (0 < self.temperature < math.inf):
            raise ValueError(
                f"TrackerConfig.temperature must be a finite number > 0, got {self.temperature!r}"
            )
        if not is_real(self.radius) or math.isnan(self.radius) or self.radius < 0:
            raise ValueError(
                "TrackerConfig.radius must be ≥ 0 cells (0 or inf: unrestricted), "
                f"got {self.radius!r}"
            )
        if not is_real(self.visibility_threshold) or not (0 <= self.visibility_threshold <= 1):
            raise ValueError(
                "TrackerConfig.visibility_threshold must be in [0, 1], "
                f"got {self.visibility_threshold!r}"
            )
        if not is_real(self.label_sigma) or not (0 < self.label_sigma < math.inf):
            raise ValueError(
                "TrackerConfig.label_sigma must be a finite number > 0 cells, "
                f"got {self.label_sigma!r}"
            )

    @property
    def restricted(self) -> bool:
        """True when the neighbourhood radius limits propagation."""
        return 0 < self.radius < math.inf
