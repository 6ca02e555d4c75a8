"""Reference trackers the package's methods are compared with (benchmark only).

* :class:`OpenCvLkBaseline`: what a user writes with OpenCV alone, pyramidal
  Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``, 21x21 window, 3 levels) frame to frame with a
  forward-backward check (1 pixel); a point that fails the check, or leaves the image,
  is dropped for good (reported not visible at its last position).
* :class:`StaticBaseline`: the floor, points never move and are always visible.
* :func:`raw_pixel_features`: 16x16 patches of the frame as "features", to run label
  propagation on raw pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from rvm_ros.tracking.state import TrackState

__all__ = ["OpenCvLkBaseline", "StaticBaseline", "raw_pixel_features"]

_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)


class OpenCvLkBaseline:
    """Plain OpenCV Lucas-Kanade with a forward-backward check (see the module)."""

    needs_features = False

    def __init__(self, window: int = 21, levels: int = 3, fb_threshold: float = 1.0) -> None:
        self._win = (window, window)
        self._levels = levels
        self._fb = fb_threshold
        self._prev: np.ndarray | None = None
        self._xy = np.zeros((0, 2), np.float32)  # OpenCV coordinates
        self._alive = np.zeros(0, bool)
        self._ids = np.zeros(0, np.int32)

    def add_queries(self, xy: np.ndarray, ids: np.ndarray) -> None:
        """Start points (continuous pixels) on the next frame."""
        self._xy = np.concatenate([self._xy, np.asarray(xy, np.float32) - 0.5])
        self._alive = np.concatenate([self._alive, np.ones(len(ids), bool)])
        self._ids = np.concatenate([self._ids, np.asarray(ids, np.int32)])

    def update(self, image: np.ndarray, _features: np.ndarray | None = None) -> TrackState:
        """Track into a new RGB or grey uint8 frame (the features are not read)."""
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        live = np.flatnonzero(self._alive)
        if self._prev is not None and live.size:
            p0 = self._xy[live].reshape(-1, 1, 2)
            p1, st, _ = cv2.calcOpticalFlowPyrLK(
                self._prev,
                grey,
                p0,
                p0.copy(),
                winSize=self._win,
                maxLevel=self._levels,
                criteria=_CRITERIA,
            )
            pb, stb, _ = cv2.calcOpticalFlowPyrLK(
                grey,
                self._prev,
                np.asarray(p1, np.float32),
                p0.copy(),
                winSize=self._win,
                maxLevel=self._levels,
                criteria=_CRITERIA,
            )
            fb = np.linalg.norm((pb - p0).reshape(-1, 2), axis=1)
            h, w = grey.shape
            q = p1.reshape(-1, 2)
            ok = (st.reshape(-1) == 1) & (stb.reshape(-1) == 1) & (fb < self._fb)
            ok &= (q[:, 0] >= -0.5) & (q[:, 0] < w - 0.5) & (q[:, 1] >= -0.5) & (q[:, 1] < h - 0.5)
            self._xy[live[ok]] = q[ok]
            self._alive[live[~ok]] = False
        self._prev = grey
        return TrackState(
            ids=self._ids.copy(),
            xy=self._xy + 0.5,
            visible=self._alive.copy(),
            confidence=self._alive.astype(np.float32),
        )


class StaticBaseline:
    """Points stay where they were queried, always visible."""

    needs_features = False

    def __init__(self) -> None:
        self._xy = np.zeros((0, 2), np.float32)
        self._ids = np.zeros(0, np.int32)

    def add_queries(self, xy: np.ndarray, ids: np.ndarray) -> None:
        """Add points (continuous pixels)."""
        self._xy = np.concatenate([self._xy, np.asarray(xy, np.float32)])
        self._ids = np.concatenate([self._ids, np.asarray(ids, np.int32)])

    def update(self, _image: np.ndarray, _features: np.ndarray | None = None) -> TrackState:
        """The query positions again (neither the frame nor the features are read)."""
        n = self._ids.shape[0]
        return TrackState(
            ids=self._ids.copy(),
            xy=self._xy.copy(),
            visible=np.ones(n, bool),
            confidence=np.ones(n, np.float32),
        )


def raw_pixel_features(frame: np.ndarray, cell: int = 16) -> np.ndarray:
    """float32 ``[H/cell, W/cell, 3*cell*cell]``: each cell's RGB pixels minus their mean."""
    h, w = frame.shape[0] // cell, frame.shape[1] // cell
    x = frame[: h * cell, : w * cell].astype(np.float32).reshape(h, cell, w, cell, 3)
    x = x.transpose(0, 2, 1, 3, 4).reshape(h, w, -1)
    return np.ascontiguousarray(x - x.mean(axis=2, keepdims=True))
