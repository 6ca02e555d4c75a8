"""``TrackState``: the tracked points after one frame (what every tracker's ``update`` returns)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TrackState"]


@dataclass(frozen=True, eq=False)
class TrackState:
    """The tracked points after one frame, in ascending id order.

    Attributes:
        ids: int32 ``[P]`` point ids.
        xy: float32 ``[P, 2]`` positions ``(x, y)`` in grid cells (cell centres at
            ``i + 0.5``). For a point that is not visible, the last position at which it
            was visible.
        visible: bool ``[P]``, ``confidence >= visibility_threshold``.
        confidence: float32 ``[P]`` in [0, 1], the peak of the point's propagated heatmap.
    """

    ids: np.ndarray
    xy: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])
