"""Point bookkeeping shared by the image-based trackers (``klt``, ``hybrid``).

Positions are continuous pixel coordinates of the image handed to ``update`` (the camera
image in the node; centre of pixel ``(r, c)`` at ``(c + 0.5, r + 0.5)``). The trackers
work on its grey version, downscaled (area average) when its long side exceeds
``TrackerConfig.max_side``, in OpenCV coordinates of that tracking image (centre of pixel 0
at 0); positions are converted on the way in and out, so callers only see image pixels.

The RVM features are read at a point's cell through a :data:`CellMap` (image pixels to
feature-grid coordinates, the node's preprocessing geometry); without one the grid is
taken to tile the whole image evenly (a stretched network input).
"""

from __future__ import annotations

import abc

import cv2
import numpy as np

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.queries import check_queries
from rvm_ros.tracking.state import TrackState

__all__ = ["CellMap", "ImagePointTracker", "inside", "to_grey"]

CellMap = tuple[float, float, float, float]
"""``(ax, bx, ay, by)``: continuous image pixel ``(x, y)`` lies at continuous feature-grid
coordinate ``(ax * x + bx, ay * y + by)`` (cell ``c`` spans ``[c, c + 1)``)."""


def inside(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """bool ``[P]``: OpenCV-coordinate positions within the ``(H, W)`` image."""
    h, w = size
    return (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)


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
        # id -> (image xy, continuous pixels; alive)
        self._pending: dict[int, tuple[np.ndarray, bool]] = {}
        self._size: tuple[int, int] | None = None  # (H, W) of the tracking image
        self._image_size: tuple[int, int] | None = None  # (H, W) of the images handed in
        self._scale = np.ones(2, np.float32)  # tracking pixels per image pixel (x, y)
        # feature-grid coordinate of tracking-image OpenCV coordinate: k * xy + c - 0.5
        self._cell_k = np.ones(2, np.float64)
        self._cell_c = np.zeros(2, np.float64)

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
        pts, ids_list = check_queries(xy, ids, used, self._image_size)
        for i, p in zip(ids_list, pts, strict=True):
            self._pending[i] = (p.astype(np.float32), True)

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
        image_xy = self._to_image(self._xy)
        for i, p, v in zip(self._ids.tolist(), image_xy, self._visible.tolist(), strict=True):
            self._pending[int(i)] = (p.copy(), bool(v))
        self._keep(np.zeros(self._ids.shape[0], bool))
        self._forget()
        self._size = None
        self._image_size = None

    def _to_image(self, xy: np.ndarray) -> np.ndarray:
        """Tracking-image OpenCV coordinates ``[P, 2]`` as continuous image pixels."""
        return np.asarray((xy + 0.5) / self._scale, dtype=np.float32)

    def _tracking_image(self, image: np.ndarray) -> np.ndarray:
        """The grey tracking image of ``image`` (downscaled to ``max_side``); sets the scale."""
        grey = to_grey(image)
        h, w = grey.shape
        side = int(self.config.max_side)
        if side > 0 and max(h, w) > side:
            f = side / max(h, w)
            tw, th = max(8, round(w * f)), max(8, round(h * f))
            grey = cv2.resize(grey, (tw, th), interpolation=cv2.INTER_AREA)
        self._scale = np.array([grey.shape[1] / w, grey.shape[0] / h], np.float32)
        return np.asarray(grey)

    def _set_cells(self, cells: CellMap | None, features: np.ndarray | None) -> None:
        """Where the feature grid lies in the tracking image (see :data:`CellMap`)."""
        sx, sy = float(self._scale[0]), float(self._scale[1])
        if cells is None:
            if features is None or self._size is None:
                return
            h, w = self._image_size if self._image_size is not None else self._size
            cells = (features.shape[1] / w, 0.0, features.shape[0] / h, 0.0)
        ax, bx, ay, by = (float(v) for v in cells)
        # image x = (cv + 0.5) / s; grid = a * x + b
        self._cell_k = np.array([ax / sx, ay / sy])
        self._cell_c = np.array([ax * 0.5 / sx + bx, ay * 0.5 / sy + by])

    def update(
        self,
        image: np.ndarray,
        features: np.ndarray | None = None,
        cells: CellMap | None = None,
    ) -> TrackState:
        """Track all points into a new frame.

        Args:
            image: the camera frame, uint8 ``[H, W, 3]`` RGB or ``[H, W]`` grey.
            features: float ``[h, w, C]`` RVM patch features of the frame (used by
                trackers with ``needs_features``; ignored otherwise).
            cells: where the features' cells lie in ``image`` (:data:`CellMap`);
                ``None``: the grid tiles the whole image evenly.

        Returns:
            Every point (pending queries included, now started), ascending id; ``xy`` in
            continuous pixel coordinates of ``image``.

        Raises:
            ValueError: a bad image, a frame size that differs from the last one without a
                :meth:`reset`, or bad features. The tracker is unchanged when it raises.
        """
        img = np.asarray(image)
        h, w = img.shape[:2]
        if self._image_size is not None and self._image_size != (h, w):
            raise ValueError(
                f"update: image is {w}x{h} but the tracker's frames are "
                f"{self._image_size[1]}x{self._image_size[0]}; call reset() when the input "
                "size changes"
            )
        feats = self._check_features(features) if self.needs_features else None
        if self._pending:
            xy = np.stack([p for p, _ in self._pending.values()])
            out = (xy[:, 0] > w) | (xy[:, 1] > h)
            if out.any():
                ids_out = [i for i, o in zip(self._pending, out, strict=True) if o]
                raise ValueError(f"update: points {sorted(ids_out)} lie outside the {w}x{h} image")
        old_scale = self._scale
        grey = self._tracking_image(img)
        if self._ids.shape[0] and not np.array_equal(old_scale, self._scale):
            # points kept across a reset to another size: carry them into the new image
            self._xy = ((self._xy + 0.5) / old_scale * self._scale - 0.5).astype(np.float32)
        self._image_size = (h, w)
        self._size = (int(grey.shape[0]), int(grey.shape[1]))
        self._set_cells(cells, feats)
        self._track(grey, feats)
        if self._pending:
            ids = np.array(sorted(self._pending), dtype=np.int32)
            xy = np.stack([self._pending[int(i)][0] for i in ids]).astype(np.float32)
            xy = xy * self._scale - 0.5  # image pixels -> tracking OpenCV coordinates
            alive = np.array([self._pending[int(i)][1] for i in ids], dtype=bool)
            self._pending.clear()
            self._anchor(grey, feats, ids, xy, alive)
        order = np.argsort(self._ids, kind="stable")
        return TrackState(
            ids=self._ids[order].copy(),
            xy=self._to_image(self._xy[order]),
            visible=self._visible[order].copy(),
            confidence=self._conf[order].copy(),
        )

    # ------------------------------------------------------------------ for subclasses

    def _check_features(self, features: np.ndarray | None) -> np.ndarray:
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
        _grey: np.ndarray,
        _features: np.ndarray | None,
        ids: np.ndarray,
        xy: np.ndarray,
        alive: np.ndarray,
    ) -> None:
        """Start points ``ids`` at ``xy`` (OpenCV coordinates) on this frame (the frame
        ``_grey`` and its features: for subclasses that keep a point's appearance)."""
        self._append(ids, xy, alive)

    @abc.abstractmethod
    def _track(self, grey: np.ndarray, features: np.ndarray | None) -> None:
        """Move the started points into the frame ``grey`` (remember what the next needs)."""

    @abc.abstractmethod
    def _forget(self) -> None:
        """Drop what was remembered of earlier frames."""
