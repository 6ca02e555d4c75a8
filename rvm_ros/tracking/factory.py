"""``create_tracker``: the tracker of a :class:`TrackerConfig`'s ``method``."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.state import TrackState

__all__ = ["Tracker", "create_tracker"]


class Tracker(Protocol):
    """What every tracker method offers (positions in pixels of the image handed to
    ``update``; ``cells``: where the feature grid lies in it, see
    :data:`~rvm_ros.tracking.image_tracker.CellMap`)."""

    config: TrackerConfig
    needs_features: bool

    @property
    def ids(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def add_queries(self, xy: np.ndarray, ids: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray | list[int]) -> None: ...

    def clear(self) -> None: ...

    def reset(self) -> None: ...

    def update(
        self,
        image: np.ndarray,
        features: np.ndarray | None = None,
        cells: tuple[float, float, float, float] | None = None,
    ) -> TrackState: ...


def create_tracker(config: TrackerConfig | None = None) -> Tracker:
    """A tracker for ``config.method`` (``hybrid``, ``klt`` or ``propagation``).

    Args:
        config: settings; the defaults when ``None``.
    """
    cfg = config if config is not None else TrackerConfig()
    if cfg.method == "hybrid":
        from rvm_ros.tracking.hybrid import HybridTracker

        return HybridTracker(cfg)
    if cfg.method == "klt":
        from rvm_ros.tracking.klt import KltTracker

        return KltTracker(cfg)
    from rvm_ros.tracking.propagation import PropagationTracker

    return PropagationTracker(cfg)
