"""Point bookkeeping shared by the image-based trackers (``klt``, ``hybrid``).

Positions are continuous pixel coordinates of the network-input image handed to
``update`` (centre of pixel ``(r, c)`` at ``(c + 0.5, r + 0.5)``); internally the trackers
work in OpenCV coordinates (0.5 less).
"""

from __future__ import annotations

import abc

import cv2
import numpy as np

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.queries import check_queries
from rvm_ros.tracking.state import TrackState

__all__ = ["ImagePointTracker", "check_queries", "to_grey"]


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]`` from a uint8 ``[H, W]`` grey or ``[H, W, 3]`` RGB image.

    Raises:
        ValueError: another shape or dtype, or an image smaller than 8x8.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(
            f"update: image must be uint8 [H, W] or [H, W, 3], got {img.dtype} {img.shape}"
        )
    if min(img.shape[:2]) < 8:
        raise ValueError(f"update: image is too small ({img.shape[1]}x{img.shape[0]})")
    if img.ndim == 3:
        return np.asarray(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    return np.ascontiguousarray(img)


class ImagePointTracker(abc.ABC):
    """Points tracked on the images themselves: ids, queries, removal, resets.

    Subclasses implement :meth:`_track` (move the points into a new frame) and
    :meth:`_anchor` (start points on a frame). Per point the base keeps the position
    (OpenCV coordinates), visibility and confidence; a point that is not visible holds the
    tracker's last estimate of its position (the TrackedPoint contract).
    """

    needs_features = False

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self._ids = np.zeros(0, np.int32)
        self._xy = np.zeros((0, 2), np.float32)  # [P, 2] OpenCV coordinates
        self._visible = np.zeros(0, bool)
        self._conf = np.zeros(0, np.float32)
        self._pending: dict[int, tuple[np.ndarray, bool]] = {}  # id -> (cv xy, alive)
        self._size: tuple[int, int] | None = None  # (H, W) of the frames

    @property
    def ids(self) -> np.ndarray:
        """Ids of all points (tracked and pending), ascending, int32."""
        return np.array(sorted({*self._ids.tolist(), *self._pending}), dtype=np.int32)

    def __len__(self) -> int:
        return int(self._ids.shape[0]) + len(self._pending)

    def add_queries(self, xy: np.ndarray, ids: np.ndarray) -> None:
        """Add query points (pixels of the network input); they start on the next frame.

        Raises:
            ValueError: see :func:`check_queries`.
        """
        used = {*self._ids.tolist(), *self._pending}
        pts, ids_list = check_queries(xy, ids, used, self._size)
        for i, p in zip(ids_list, pts, strict=True):
            self._pending[i] = ((p - 0.5).astype(np.float32), True)

    def remove(self, ids: np.ndarray | list[int]) -> None:
        """Stop tracking the given points.

        Raises:
            ValueError: an id that is not tracked (nothing is removed then).
        """
        gone = {int(i) for i in np.asarray(ids).reshape(-1)}
        tracked = set(self._ids.tolist())
        unknown = sorted(i for i in gone if i not in tracked and i not in self._pending)
        if unknown:
            raise ValueError(f"remove: ids {unknown} are not tracked")
        for i in gone:
            self._pending.pop(i, None)
        keep = np.array([int(i) not in gone for i in self._ids], dtype=bool)
        if not keep.all():
            self._keep(keep)

    def clear(self) -> None:
        """Drop every point (tracked and pending)."""
        self._keep(np.zeros(self._ids.shape[0], bool))
        self._pending.clear()

    def reset(self) -> None:
        """Forget the previous frame; points start again from their current estimates.

        A visible point is re-anchored on the next frame like a new query; a point that
        is not visible stays not visible (at its last estimate) until removed.
        """
        for i, p, v in zip(self._ids.tolist(), self._xy, self._visible.tolist(), strict=True):
            self._pending[int(i)] = (p.copy(), bool(v))
        self._keep(np.zeros(self._ids.shape[0], bool))
        self._forget()
        self._size = None

    def update(self, image: np.ndarray, features: np.ndarray | None = None) -> TrackState:
        """Track all points into a new frame.

        Args:
            image: the network-input frame, uint8 ``[H, W, 3]`` RGB or ``[H, W]`` grey.
            features: float ``[h, w, C]`` RVM patch features of the frame (used by
                trackers with ``needs_features``; ignored otherwise).

        Returns:
            Every point (pending queries included, now started), ascending id; ``xy`` in
            continuous pixel coordinates of ``image``.

        Raises:
            ValueError: a bad image, a frame size that differs from the last one without a
                :meth:`reset`, or bad features. The tracker is unchanged when it raises.
        """
        grey = to_grey(image)
        h, w = grey.shape
        if self._size is not None and self._size != (h, w):
            raise ValueError(
                f"update: image is {w}x{h} but the tracker's frames are "
                f"{self._size[1]}x{self._size[0]}; call reset() when the input size changes"
            )
        feats = self._check_features(features, (h, w)) if self.needs_features else None
        if self._pending:
            xy = np.stack([p for p, _ in self._pending.values()]) + 0.5
            out = (xy[:, 0] > w) | (xy[:, 1] > h)
            if out.any():
                ids_out = [i for i, o in zip(self._pending, out, strict=True) if o]
                raise ValueError(f"update: points {sorted(ids_out)} lie outside the {w}x{h} image")
        self._size = (h, w)
        self._track(grey, feats)
        if self._pending:
            ids = np.array(sorted(self._pending), dtype=np.int32)
            xy = np.stack([self._pending[int(i)][0] for i in ids]).astype(np.float32)
            alive = np.array([self._pending[int(i)][1] for i in ids], dtype=bool)
            self._pending.clear()
            self._anchor(grey, feats, ids, xy, alive)
        order = np.argsort(self._ids, kind="stable")
        return TrackState(
            ids=self._ids[order].copy(),
            xy=(self._xy[order] + 0.5).astype(np.float32),
            visible=self._visible[order].copy(),
            confidence=self._conf[order].copy(),
        )

    # ------------------------------------------------------------------ for subclasses

    def _check_features(self, features: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        if features is None:
            raise ValueError(f"update: the {self.config.method} tracker needs the RVM features")
        feats = np.asarray(features)
        if feats.ndim != 3 or min(feats.shape) < 1 or not np.issubdtype(feats.dtype, np.floating):
            raise ValueError(
                f"update: features must be a float [h, w, C] array, got {feats.dtype} {feats.shape}"
            )
        if not np.isfinite(feats).all():
            raise ValueError("update: features are not finite")
        return feats

    def _append(self, ids: np.ndarray, xy: np.ndarray, visible: np.ndarray) -> None:
        """Add started points (subclasses extend their own per-point arrays first)."""
        self._ids = np.concatenate([self._ids, ids.astype(np.int32)])
        self._xy = np.concatenate([self._xy, xy.astype(np.float32)])
        self._visible = np.concatenate([self._visible, visible])
        self._conf = np.concatenate([self._conf, visible.astype(np.float32)])

    def _keep(self, keep: np.ndarray) -> None:
        """Keep only the points where ``keep`` (subclasses filter their arrays too)."""
        self._ids = self._ids[keep]
        self._xy = self._xy[keep]
        self._visible = self._visible[keep]
        self._conf = self._conf[keep]

    def _anchor(
        self,
        grey: np.ndarray,
        features: np.ndarray | None,
        ids: np.ndarray,
        xy: np.ndarray,
        alive: np.ndarray,
    ) -> None:
        """Start points ``ids`` at ``xy`` (OpenCV coordinates) on this frame."""
        self._append(ids, xy, alive)

    @abc.abstractmethod
    def _track(self, grey: np.ndarray, features: np.ndarray | None) -> None:
        """Move the started points into the frame ``grey`` (remember what the next needs)."""

    @abc.abstractmethod
    def _forget(self) -> None:
        """Drop what was remembered of earlier frames."""
