"""The ``klt`` tracker: pyramidal Lucas-Kanade with a forward-backward check.

Per frame every point takes one Lucas-Kanade step from its last estimate (forward into the
new frame, then backward); the forward-backward error ``e`` gives the confidence
``clip(1 - e / (2 fb_threshold), 0, 1)``, so ``visibility_threshold`` 0.5 means
``e < fb_threshold`` and the default 0.6 ``e < 0.8 fb_threshold``. A point is visible
when its confidence reaches the threshold and its new position lies inside the image;
only then does it move. A point that fails once is lost: it keeps its last position, not
visible, until removed (retrying from the last position was measured worse: on the
development benchmark, points in weak texture that fail and are retried latch onto the
wrong place). Nothing here looks at the RVM features.
"""

from __future__ import annotations

import numpy as np

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.image_tracker import ImagePointTracker, inside
from rvm_ros.tracking.lucas_kanade import LucasKanade

__all__ = ["KltTracker"]


class KltTracker(ImagePointTracker):
    """Lucas-Kanade point tracker (see the module docstring)."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        """Create a tracker (``config.method`` is not checked; defaults when ``None``)."""
        super().__init__(config if config is not None else TrackerConfig(method="klt"))
        self._lk = LucasKanade(self.config.lk_window, self.config.lk_levels)
        self._prev: np.ndarray | None = None  # pyramid of the last frame

    def _forget(self) -> None:
        self._prev = None

    def _track(self, grey: np.ndarray, _features: np.ndarray | None) -> None:
        """Lucas-Kanade steps for the visible points (the features are not read)."""
        pyr = self._lk.pyramid(grey)
        live = np.flatnonzero(self._visible)
        if self._prev is not None and live.size:
            new, ok, fb = self._lk.track(self._prev, pyr, self._xy[live])
            conf = np.where(ok, 1.0 - fb / (2.0 * self.config.fb_threshold), 0.0)
            conf = np.clip(conf, 0.0, 1.0).astype(np.float32)
            assert self._size is not None
            in_view = inside(new, self._size)
            vis = (conf >= self.config.visibility_threshold) & in_view
            self._xy[live[vis]] = new[vis]
            self._visible[live] = vis
            self._conf[live] = np.where(in_view, conf, 0.0)
        self._prev = pyr
