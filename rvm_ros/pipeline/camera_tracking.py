"""One camera's point tracking inside the processor: its tracker, its automatic points
(grid and corner seeding, re-seeding of lost ones) and the hand-over of query points.

Pure Python + numpy + OpenCV: no ROS. A `CameraTracking` is used from one thread at a
time (the processor's tracking stage); query points arrive as `PendingQueries`, which the
processor collects under its lock from any thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from rvm_ros.pipeline.config import ProcessingConfig
from rvm_ros.pipeline.types import ImageTracks, TrackJob

if TYPE_CHECKING:
    from rvm_ros.imaging.preprocess import Geometry

__all__ = ["CameraTracking", "PendingQueries"]


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
        self, tracker: Any, config: ProcessingConfig, new_ids: Callable[[int], np.ndarray]
    ) -> None:
        self.tracker = tracker
        self.config = config
        self._new_ids = new_ids
        self._reseed_ns = round(config.track_reseed_s * 1e9)
        self.user_ids: list[int] = []
        self.auto_ids = np.zeros(0, np.int32)  # automatic points (grid, corners)
        self.lost_since: dict[int, int] = {}  # automatic id -> stamp it was first not visible
        self.reseed = 0  # automatic points to seed on the next frame
        self.last_xy: np.ndarray | None = None  # [P, 2] network pixels, of the last update

    def update(self, job: TrackJob, queries: PendingQueries | None, gap: bool) -> ImageTracks:
        """Track into the frame of ``job`` (queries first attached, resets applied).

        Raises:
            ValueError: the tracker refused the frame or the features (the caller logs,
                counts and resets).
        """
        if job.reset_reason == "gap" or (gap and not job.reset_reason):
            # frames missing: the tracker re-finds its points (automatic ones kept; those
            # still lost are replaced after track_reseed_s as usual)
            self.tracker.reset()
        elif job.reset_reason:
            self.reset(job.image)
        self._attach(queries, job.geometry)
        if self.reseed:
            count, self.reseed = self.reseed, 0
            self._seed_corners(job.image, count)
        feats = job.features if self.tracker.needs_features else None
        # job.image: the network input [H, W, 3] uint8 the step saw
        state = self.tracker.update(job.image, feats)
        self.last_xy = np.asarray(state.xy)
        self._reseed_lost(job.stamp_ns, np.asarray(state.ids), np.asarray(state.visible))
        return self._to_image(state, job.geometry)

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
            gx = (np.arange(n) + 0.5) * (self.config.model_width / n)
            gy = (np.arange(n) + 0.5) * (self.config.model_height / n)
            xx, yy = np.meshgrid(gx, gy)  # [n, n] each, row-major
            xy = np.stack([xx.ravel(), yy.ravel()], axis=-1).astype(np.float32)  # [n*n, 2]
            self.tracker.add_queries(xy, ids)
            self.auto_ids = ids
        if self.config.track_corners > 0:
            self._seed_corners(image, self.config.track_corners)

    def _seed_corners(self, image: np.ndarray, count: int) -> None:
        """Add up to ``count`` automatic points on corners of ``image`` (network input)
        away from the camera's other points."""
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

    def _attach(self, q: PendingQueries | None, geometry: Geometry) -> None:
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
        mx, my = geometry.image_to_model(x, y)
        # network-input pixels, clamped onto the network input
        cx = np.clip(np.asarray(mx, dtype=np.float64), 0.0, float(self.config.model_width))
        cy = np.clip(np.asarray(my, dtype=np.float64), 0.0, float(self.config.model_height))
        xy = np.stack([cx, cy], axis=-1).astype(np.float32)  # [P, 2]
        self.tracker.add_queries(xy, ids)
        self.user_ids.extend(int(i) for i in ids)

    @staticmethod
    def _to_image(state: Any, geometry: Geometry) -> ImageTracks:
        ids = np.asarray(state.ids, dtype=np.int32).reshape(-1)
        xy = np.asarray(state.xy, dtype=np.float64).reshape(-1, 2)  # [P, 2] network pixels
        ix, iy = geometry.model_to_image(xy[:, 0], xy[:, 1])
        return ImageTracks(
            ids=ids,
            x=np.asarray(ix, dtype=np.float32).reshape(-1),
            y=np.asarray(iy, dtype=np.float32).reshape(-1),
            visible=np.asarray(state.visible, dtype=bool).reshape(-1),
            confidence=np.asarray(state.confidence, dtype=np.float32).reshape(-1),
        )
