"""The ``propagation`` tracker in the image trackers' interface (pixels of the input).

Wraps :class:`~rvm_ros.tracking.label_propagation.PointTracker` (label propagation on the feature
grid, positions in grid cells) so that every method takes the same calls: queries and
positions in continuous pixels of the network-input image; the cell size is the image
size over the grid size.
"""

from __future__ import annotations

import numpy as np

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.image_tracker import to_grey
from rvm_ros.tracking.label_propagation import PointTracker
from rvm_ros.tracking.queries import check_queries
from rvm_ros.tracking.state import TrackState

__all__ = ["PropagationTracker"]


class PropagationTracker:
    """Label propagation with pixel positions (see the module docstring)."""

    needs_features = True

    def __init__(self, config: TrackerConfig | None = None) -> None:
        """Create a tracker (defaults when ``config`` is ``None``)."""
        self.config = config if config is not None else TrackerConfig(method="propagation")
        self._inner = PointTracker(self.config)
        self._pending: dict[int, np.ndarray] = {}  # id -> pixel xy, until the cell size is known
        self._scale: tuple[float, float] | None = None  # (cell width, cell height) in pixels

    @property
    def ids(self) -> np.ndarray:
        """Ids of all points, ascending, int32."""
        return np.array(sorted({*self._inner.ids.tolist(), *self._pending}), dtype=np.int32)

    def __len__(self) -> int:
        return len(self._inner) + len(self._pending)

    def add_queries(self, xy: np.ndarray, ids: np.ndarray) -> None:
        """Add query points in pixels (see :meth:`PointTracker.add_queries`)."""
        used = {*self._inner.ids.tolist(), *self._pending}
        pts, ids_list = check_queries(xy, ids, used, None)
        for i, p in zip(ids_list, pts, strict=True):
            self._pending[i] = p

    def remove(self, ids: np.ndarray | list[int]) -> None:
        """Stop tracking the given points (``ValueError`` for an unknown id)."""
        gone = [int(i) for i in np.asarray(ids).reshape(-1)]
        known = set(self._inner.ids.tolist())
        unknown = sorted(i for i in gone if i not in known and i not in self._pending)
        if unknown:
            raise ValueError(f"remove: ids {unknown} are not tracked")
        inner = [i for i in gone if i in known]
        if inner:
            self._inner.remove(inner)
        for i in gone:
            self._pending.pop(i, None)

    def clear(self) -> None:
        """Drop every point."""
        self._inner.clear()
        self._pending.clear()

    def reset(self) -> None:
        """Forget the context (see :meth:`PointTracker.reset`)."""
        self._inner.reset()

    def update(
        self,
        image: np.ndarray,
        features: np.ndarray | None = None,
        cells: tuple[float, float, float, float] | None = None,
    ) -> TrackState:
        """Track into a new frame (``features`` required; ``cells``: where the grid lies in
        the image, :data:`~rvm_ros.tracking.image_tracker.CellMap`; default: it tiles the image)."""
        if features is None:
            raise ValueError("update: the propagation tracker needs the RVM features")
        grey = to_grey(image)
        feats = np.asarray(features)
        if feats.ndim != 3:
            raise ValueError(f"update: features must have shape [h, w, C], got {feats.shape}")
        if cells is None:
            cells = (feats.shape[1] / grey.shape[1], 0.0, feats.shape[0] / grey.shape[0], 0.0)
        a = np.array([cells[0], cells[2]], np.float64)
        b = np.array([cells[1], cells[3]], np.float64)
        if self._pending:
            ids = np.array(sorted(self._pending), dtype=np.int32)
            xy = np.stack([self._pending[int(i)] for i in ids]) * a + b
            limit = np.array([feats.shape[1], feats.shape[0]], np.float64)
            self._inner.add_queries(np.clip(xy, 0.0, limit).astype(np.float32), ids)
            self._pending.clear()
        state = self._inner.update(feats)
        xy_px = ((state.xy.astype(np.float64) - b) / a).astype(np.float32)
        return TrackState(
            ids=state.ids, xy=xy_px, visible=state.visible, confidence=state.confidence
        )
