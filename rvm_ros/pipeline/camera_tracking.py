"""One camera's point tracking inside the processor: its tracker, its automatic points
(grid and corner seeding, re-seeding of lost ones) and the hand-over of query points.

The tracker works on the camera image itself (``TrackJob.camera_image``; its own
``max_side`` bounds the resolution), not on the network input: positions go in and come
back in image pixels. The RVM features are read at a point's cell through the frame's
preprocessing geometry (:func:`cell_map`).

Pure Python + numpy + OpenCV: no ROS. A `CameraTracking` is used from one thread at a
time (the processor's tracking stage); query points arrive as `PendingQueries`, which the
processor collects under its lock from any thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import cv2
import numpy as np

from rvm_ros.pipeline.config import ProcessingConfig
from rvm_ros.pipeline.types import ImageTracks, TrackJob

if TYPE_CHECKING:
    from rvm_ros.imaging.preprocess import Geometry
    from rvm_ros.tracking.factory import Tracker
    from rvm_ros.tracking.state import TrackState

__all__ = ["CameraTracking", "PendingQueries", "cell_map", "tracking_input"]


def cell_map(
    geometry: Geometry, features: np.ndarray | None, on_camera: bool
) -> tuple[float, float, float, float] | None:
    """``(ax, bx, ay, by)``: tracker-image pixel ``(x, y)`` at feature-grid coordinate
    ``(ax * x + bx, ay * y + by)`` (:data:`rvm_ros.tracking.image_tracker.CellMap`).

    Args:
        geometry: the frame's preprocessing (image pixels to network pixels).
        features: the unpooled ``[h, w, D]`` grid of the network input (None: no map).
        on_camera: the tracker sees the camera image (else the network input).
    """
    if features is None:
        return None
    kx = features.shape[1] / geometry.model_width  # cells per network pixel
    ky = features.shape[0] / geometry.model_height
    if not on_camera:
        return (kx, 0.0, ky, 0.0)
    return (
        geometry.scale_x * kx,
        geometry.offset_x * kx,
        geometry.scale_y * ky,
        geometry.offset_y * ky,
    )


def tracking_input(image: np.ndarray) -> np.ndarray:
    """uint8 view or copy of a camera image (float32 in [0, 1] is scaled to 0-255)."""
    if image.dtype == np.uint8:
        return image
    scaled = np.clip(np.asarray(image, np.float32) * 255.0 + 0.5, 0.0, 255.0)
    return np.asarray(scaled, dtype=np.uint8)


class PendingQueries:
    """Query points requested for one camera, not yet handed to its tracker."""

    __slots__ = ("clear_user", "ids", "xs", "ys")

    def __init__(self) -> None:
        self.clear_user = False
        self.xs: list[np.ndarray] = []
        self.ys: list[np.ndarray] = []
        self.ids: list[np.ndarray] = []


class CameraTracking:
    """A camera's tracker and the bookkeeping of its points.

    Args:
        tracker: the camera's tracker (`rvm_ros.tracking.factory.create_tracker`).
        config: the processing settings (seeding, re-seeding, network input size).
        new_ids: ``count -> int32 [count]`` fresh track ids (never reused).
    """

    def __init__(
        self, tracker: Tracker, config: ProcessingConfig, new_ids: Callable[[int], np.ndarray]
    ) -> None:
        self.tracker = tracker
        self.config = config
        self._new_ids = new_ids
        self._reseed_ns = round(config.track_reseed_s * 1e9)
        self.user_ids: list[int] = []
        self.auto_ids = np.zeros(0, np.int32)  # automatic points (grid, corners)
        self.lost_since: dict[int, int] = {}  # automatic id -> stamp it was first not visible
        self.reseed = 0  # automatic points to seed on the next frame
        self.last_xy: np.ndarray | None = None  # [P, 2] image pixels, of the last update

    def update(self, job: TrackJob, queries: PendingQueries | None, gap: bool) -> ImageTracks:
        """Track into the frame of ``job`` (queries first attached, resets applied).

        Raises:
            ValueError: the tracker refused the frame or the features (the caller logs,
                counts and resets).
        """
        on_camera = job.camera_image is not None
        # the camera image (or, without one, the network input the step saw)
        image = tracking_input(job.camera_image) if job.camera_image is not None else job.image
        if job.reset_reason == "gap" or (gap and not job.reset_reason):
            # frames missing: the tracker re-finds its points (automatic ones kept; those
            # still lost are replaced after track_reseed_s as usual)
            self.tracker.reset()
        elif job.reset_reason:
            self.reset(image)
        self._attach(queries, job.geometry, on_camera, image.shape[:2])
        if self.reseed:
            count, self.reseed = self.reseed, 0
            self._seed_corners(image, count)
        feats = job.features if self.tracker.needs_features else None
        cells = cell_map(job.geometry, feats, on_camera)
        state = self.tracker.update(image, feats, cells)
        self.last_xy = np.asarray(state.xy)
        self._reseed_lost(job.stamp_ns, np.asarray(state.ids), np.asarray(state.visible))
        return self._to_image(state, job.geometry, on_camera)

    def reset(self, image: np.ndarray) -> None:
        """The tracker's part of a state reset (other than ``gap``): context reset,
        automatic points re-seeded with new ids."""
        self.tracker.reset()
        n = self.config.track_grid
        if n <= 0 and self.config.track_corners <= 0:
            return
        if self.auto_ids.size:
            self.tracker.remove(self.auto_ids)
        self.auto_ids = np.zeros(0, np.int32)
        self.lost_since.clear()
        self.reseed = 0
        if n > 0:
            ids = self._new_ids(n * n)
            gx = (np.arange(n) + 0.5) * (image.shape[1] / n)
            gy = (np.arange(n) + 0.5) * (image.shape[0] / n)
            xx, yy = np.meshgrid(gx, gy)  # [n, n] each, row-major
            xy = np.stack([xx.ravel(), yy.ravel()], axis=-1).astype(np.float32)  # [n*n, 2]
            self.tracker.add_queries(xy, ids)
            self.auto_ids = ids
        if self.config.track_corners > 0:
            self._seed_corners(image, self.config.track_corners)

    def _seed_corners(self, image: np.ndarray, count: int) -> None:
        """Add up to ``count`` automatic points on corners of ``image`` (what the tracker
        sees) away from the camera's other points."""
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        h, w = grey.shape
        spacing = max(4, min(h, w) // 32)
        mask = np.full((h, w), 255, np.uint8)
        if len(self.tracker) and self.last_xy is not None:
            for x, y in self.last_xy.tolist():
                cv2.circle(mask, (int(x), int(y)), spacing, 0, -1)
        corners = cv2.goodFeaturesToTrack(
            grey, maxCorners=count, qualityLevel=0.01, minDistance=spacing, mask=mask
        )
        if corners is None:
            return
        xy = corners.reshape(-1, 2).astype(np.float32) + 0.5  # OpenCV -> continuous pixels
        ids = self._new_ids(xy.shape[0])
        self.tracker.add_queries(xy, ids)
        self.auto_ids = np.concatenate([self.auto_ids, ids])

    def _reseed_lost(self, stamp: int, ids: np.ndarray, visible: np.ndarray) -> None:
        """Drop automatic points not visible for longer than ``track_reseed_s``; their
        replacements are seeded on the next frame."""
        if self._reseed_ns <= 0 or not self.auto_ids.size:
            return
        auto = np.isin(ids, self.auto_ids)
        for i, v in zip(ids[auto].tolist(), visible[auto].tolist(), strict=True):
            if v:
                self.lost_since.pop(i, None)
            else:
                self.lost_since.setdefault(i, stamp)
        due = [i for i, s0 in self.lost_since.items() if stamp - s0 > self._reseed_ns]
        if not due:
            return
        self.tracker.remove(due)
        for i in due:
            del self.lost_since[i]
        self.auto_ids = self.auto_ids[~np.isin(self.auto_ids, due)]
        self.reseed += len(due)

    def _attach(
        self,
        q: PendingQueries | None,
        geometry: Geometry,
        on_camera: bool,
        size: tuple[int, ...],
    ) -> None:
        if q is None:
            return
        if q.clear_user and self.user_ids:
            self.tracker.remove(np.asarray(self.user_ids, dtype=np.int32))
            self.user_ids = []
        if not q.ids:
            return
        x = np.concatenate(q.xs)
        y = np.concatenate(q.ys)
        ids = np.concatenate(q.ids).astype(np.int32)
        if not on_camera:
            x, y = geometry.image_to_model(x, y)  # network-input pixels
        # clamped onto the tracker's image
        cx = np.clip(np.asarray(x, dtype=np.float64), 0.0, float(size[1]))
        cy = np.clip(np.asarray(y, dtype=np.float64), 0.0, float(size[0]))
        xy = np.stack([cx, cy], axis=-1).astype(np.float32)  # [P, 2]
        self.tracker.add_queries(xy, ids)
        self.user_ids.extend(int(i) for i in ids)

    @staticmethod
    def _to_image(state: TrackState, geometry: Geometry, on_camera: bool) -> ImageTracks:
        ids = np.asarray(state.ids, dtype=np.int32).reshape(-1)
        xy = np.asarray(state.xy, dtype=np.float64).reshape(-1, 2)  # [P, 2] tracker pixels
        if on_camera:
            ix, iy = xy[:, 0], xy[:, 1]
        else:
            ix, iy = geometry.model_to_image(xy[:, 0], xy[:, 1])
        return ImageTracks(
            ids=ids,
            x=np.asarray(ix, dtype=np.float32).reshape(-1),
            y=np.asarray(iy, dtype=np.float32).reshape(-1),
            visible=np.asarray(state.visible, dtype=bool).reshape(-1),
            confidence=np.asarray(state.confidence, dtype=np.float32).reshape(-1),
        )
