"""`Processor`: the per-frame processing shared by the live node and the bag replay.

For a batch of frames (at most one per camera) it decides each camera's state reset,
fits and preprocesses the images, runs ONE batched encoder step, checks the outputs,
splits CLS and grid, pools, casts and tracks points. Pure Python + numpy: no ROS.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from rvm_ros.pipeline.camera_tracking import CameraTracking, PendingQueries
from rvm_ros.pipeline.config import ConfigError, ProcessingConfig
from rvm_ros.pipeline.types import (
    CameraStats,
    FrameInput,
    FrameResult,
    FrameSkip,
    ImageTracks,
    TrackJob,
)
from rvm_ros.tracking.queries import check_query_count

if TYPE_CHECKING:
    from rvm_ros.imaging.preprocess import Geometry
    from rvm_ros.runtime.base import StepRunner

__all__ = ["Processor"]

log = logging.getLogger(__name__)

_MAX_GEOMETRIES = 8  # per camera: image sizes remembered (resolution changes are rare)
_INT32_MAX = 2**31 - 1
# Smallest magnitude that rounds to inf in float16 (round to nearest even).
_FLOAT16_OVERFLOW = 65520.0


class _Camera:
    """Everything the processor remembers about one camera."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seq = 0  # frames processed (results produced)
        self.last_stamp_ns: int | None = None  # of the last frame that ran through the step
        self.image_size: tuple[int, int] | None = None  # (H, W) of that frame
        self.geometry: Geometry | None = None  # of that frame
        self.frames_since_reset = 0
        self.reset_count = 0
        self.pending_reset: str | None = None  # guarded by Processor._lock
        self.queries: PendingQueries | None = None  # guarded by Processor._lock
        self.stats = CameraStats()  # guarded by Processor._lock
        self.geometries: dict[tuple[int, int], Geometry] = {}
        self.tracking: CameraTracking | None = None  # when tracking is on


class _Planned:
    """A frame that goes into the batched step."""

    __slots__ = ("cam", "frame", "geometry", "index", "reset_reason", "size")

    def __init__(
        self,
        index: int,
        frame: FrameInput,
        cam: _Camera,
        size: tuple[int, int],
        geometry: Geometry,
        reset_reason: str,
    ) -> None:
        self.index = index
        self.frame = frame
        self.cam = cam
        self.size = size
        self.geometry = geometry
        self.reset_reason = reset_reason


class Processor:
    """Runs the processing of `ProcessingConfig` with an encoder.

    Thread safety: `process` must be called from one thread at a time (the node's
    worker, or the replay loop); `reset`, `set_query_points` and `stats` may be called
    from any thread at any time (service callbacks, diagnostics) and take effect on
    each camera's next frame.

    Reset policy: before a camera's frame goes into the step, its recurrent state
    (``encoder.reset(camera)``) and tracker context are reset when, in this order of
    precedence, it is the camera's first frame (``first_frame``); a reset is pending
    because the last step gave non-finite values (``non_finite``) or `reset` was called
    (``service``); the input image size changed (``resolution_change``); the stamp is
    earlier than the last one (``time_backwards``, e.g. a looped bag); or the stamp is
    more than ``reset_on_gap_s`` after the last one (``gap``). The frame's result then
    says ``state_reset=True`` with the reason, and every reset is counted.

    Args:
        config: The processing settings.
        encoder: A `rvm_ros.runtime.StepRunner` (``step``, ``reset``, ``info``) created for
            ``config.model_height x config.model_width`` input.

    Raises:
        ConfigError: When the encoder's input size or patch grid does not fit ``config``.

    With ``defer_tracking`` the results carry their tracking work (``track_job``) instead
    of ``tracks``: the caller hands each job to `track`, in order per camera, from one
    thread (e.g. a tracking thread, so the features are out before the points are).
    """

    def __init__(
        self,
        config: ProcessingConfig,
        encoder: StepRunner[Any],  # Any: each backend's recurrent state is its own type
        defer_tracking: bool = False,
    ) -> None:
        info = encoder.info
        if (int(info.height), int(info.width)) != (config.model_height, config.model_width):
            raise ConfigError(
                "model_height",
                f"the encoder takes {info.height}x{info.width} frames but the configuration "
                f"says model_height x model_width = {config.model_height}x{config.model_width}",
            )
        self.patch_size = int(info.patch_size)
        config.validate(patch_size=self.patch_size)
        self.config = config
        self.encoder = encoder
        self.model_id = str(info.model_id)
        self.grid_height = config.model_height // self.patch_size
        self.grid_width = config.model_width // self.patch_size
        self.pool = config.feature_pool
        self.cell_size = self.patch_size * self.pool
        self.dtype = np.dtype(np.float16 if config.feature_dtype == "float16" else np.float32)
        self._gap_ns = round(config.reset_on_gap_s * 1e9)
        self._cameras = {name: _Camera(name) for name in config.cameras}
        self._lock = threading.Lock()
        self._process_lock = threading.Lock()
        self._next_id = 0
        self._unknown_frames = 0
        # [B, H, W, 3] uint8: the batch handed to the encoder (at most one frame per camera)
        self._batch = np.zeros(
            (len(config.cameras), config.model_height, config.model_width, 3), np.uint8
        )
        self.defer_tracking = bool(defer_tracking) and config.tracking
        if config.tracking:
            from rvm_ros.tracking.config import TrackerConfig
            from rvm_ros.tracking.factory import create_tracker

            tracker_config = config.tracker if config.tracker is not None else TrackerConfig()
            for cam in self._cameras.values():
                cam.tracking = CameraTracking(create_tracker(tracker_config), config, self._new_ids)

    # ------------------------------------------------------------------ public API

    @property
    def cameras(self) -> tuple[str, ...]:
        """The configured camera names."""
        return self.config.cameras

    @property
    def stats(self) -> dict[str, CameraStats]:
        """A snapshot of the per-camera counters."""
        with self._lock:
            return {name: cam.stats.copy() for name, cam in self._cameras.items()}

    @property
    def unknown_frames(self) -> int:
        """Frames skipped because their camera is not configured."""
        with self._lock:
            return self._unknown_frames

    def reset(self, camera: str | None = None, reason: str = "service") -> None:
        """Request a state reset, applied on the camera's next frame.

        Args:
            camera: One camera, or None / ``""`` for every camera.
            reason: The reset reason reported with that frame.

        Raises:
            ValueError: For an unknown camera.
        """
        with self._lock:
            for cam in self._targets(camera):
                if cam.pending_reset is None:
                    cam.pending_reset = reason

    def set_query_points(
        self,
        camera: str,
        xs: Sequence[float] | np.ndarray,
        ys: Sequence[float] | np.ndarray,
        append: bool,
    ) -> list[int]:
        """Start tracking points given in input-image pixels (from the camera's next frame).

        Args:
            camera: Camera name, or ``""`` for every camera (each tracks the same ids).
            xs: Columns in input-image pixels (x right, origin at the top-left corner).
            ys: Rows in input-image pixels (same length as ``xs``).
            append: False replaces the points set earlier with this call (the automatic
                ``track_grid`` points stay); True adds to them.

        Returns:
            The new track ids, in request order (unique, never reused).

        Raises:
            ValueError: Tracking is off, the camera is unknown, the lists differ in
                length or hold non-finite values, or a point lies outside the image /
                the part of it the network sees (checked once the camera's image size
                is known; before that, points are clamped to the feature grid).
        """
        if not self.config.tracking:
            raise ValueError("tracking is disabled (tracking=false); no points can be tracked")
        check_query_count(max(np.size(xs), np.size(ys)))
        x = np.asarray(xs, dtype=np.float64).reshape(-1)
        y = np.asarray(ys, dtype=np.float64).reshape(-1)
        if x.shape != y.shape:
            raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
        bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"point {i} is not finite: x={x[i]}, y={y[i]}")
        with self._lock:
            targets = self._targets(camera)
            for cam in targets:
                if cam.geometry is not None:
                    self._check_points_visible(cam, cam.geometry, x, y)
                if append:  # the camera's points in all stay bounded
                    check_query_count(self._user_points(cam) + x.size)
            if self._next_id + x.size > _INT32_MAX:
                raise ValueError("track ids exhausted (int32)")
            ids = np.arange(self._next_id, self._next_id + x.size, dtype=np.int32)
            self._next_id += int(x.size)
            for cam in targets:
                q = cam.queries if cam.queries is not None else PendingQueries()
                if not append:
                    q.clear_user = True
                    q.xs.clear()
                    q.ys.clear()
                    q.ids.clear()
                q.xs.append(x)
                q.ys.append(y)
                q.ids.append(ids)
                cam.queries = q
        return [int(i) for i in ids]

    def process(self, batch: Sequence[FrameInput]) -> list[FrameResult | FrameSkip]:
        """Process a batch of frames with one encoder step.

        Args:
            batch: Frames, at most one per camera.

        Returns:
            One `FrameResult` or `FrameSkip` per input, in input order.

        Raises:
            ValueError: When a camera has more than one frame in ``batch``.
            TypeError: When an element is not a `FrameInput`.
        """
        seen: set[str] = set()
        for i, frame in enumerate(batch):
            if not isinstance(frame, FrameInput):
                raise TypeError(f"batch[{i}] is a {type(frame).__name__}, not a FrameInput")
            if frame.camera in seen:
                raise ValueError(
                    f"camera {frame.camera!r} has more than one frame in the batch "
                    f"(batch[{i}]); give each camera at most one frame per step"
                )
            seen.add(frame.camera)
        with self._process_lock:
            return self._process(batch)

    # ------------------------------------------------------------------ internals

    def _targets(self, camera: str | None) -> list[_Camera]:
        if not camera:
            return list(self._cameras.values())
        cam = self._cameras.get(camera)
        if cam is None:
            raise ValueError(
                f"unknown camera {camera!r}; configured cameras: {', '.join(self._cameras)}"
            )
        return [cam]

    @staticmethod
    def _user_points(cam: _Camera) -> int:
        """Points the user asked ``cam`` to track: tracked now or waiting for a frame."""
        q = cam.queries
        waiting = sum(a.size for a in q.ids) if q is not None else 0
        if q is not None and q.clear_user:
            return waiting
        return waiting + len(getattr(cam.tracking, "user_ids", ()) or ())

    def _check_points_visible(
        self, cam: _Camera, geometry: Geometry, x: np.ndarray, y: np.ndarray
    ) -> None:
        h, w = geometry.image_height, geometry.image_width
        mx, my = geometry.image_to_model(x, y)
        mx, my = np.asarray(mx), np.asarray(my)
        inside = (x >= 0) & (x <= w) & (y >= 0) & (y <= h)
        seen = (mx >= 0) & (mx <= geometry.model_width) & (my >= 0) & (my <= geometry.model_height)
        bad = np.flatnonzero(~(inside & seen))
        if bad.size:
            i = int(bad[0])
            where = (
                f"outside the {w}x{h} image"
                if not inside[i]
                else f"in the part of the image that {geometry.mode} cuts away"
            )
            raise ValueError(
                f"point {i} (x={x[i]:g}, y={y[i]:g}) of camera {cam.name!r} is {where}"
            )

    def _skip(self, frame: FrameInput, cam: _Camera | None, reason: str, detail: str) -> FrameSkip:
        with self._lock:
            if cam is None:
                self._unknown_frames += 1
            else:
                cam.stats.skipped[reason] = cam.stats.skipped.get(reason, 0) + 1
        return FrameSkip(frame.camera, int(frame.stamp_ns), frame.header, reason, detail)

    def _geometry(self, cam: _Camera, size: tuple[int, int]) -> Geometry:
        geometry = cam.geometries.get(size)
        if geometry is None:
            from rvm_ros.imaging.preprocess import fit_geometry

            cfg = self.config
            geometry = fit_geometry(
                size[0], size[1], cfg.model_height, cfg.model_width, cfg.resize_mode
            )
            if len(cam.geometries) >= _MAX_GEOMETRIES:
                cam.geometries.clear()
            cam.geometries[size] = geometry
        return geometry

    def _check_image(self, frame: FrameInput) -> tuple[str, str] | None:
        """Returns (reason, detail) when the image cannot be used."""
        img = frame.image
        where = f"camera {frame.camera!r} stamp {frame.stamp_ns}"
        if not isinstance(img, np.ndarray):
            return "invalid_image", f"{where}: image is a {type(img).__name__}, not a numpy array"
        if img.ndim != 3 or img.shape[2] != 3:
            return "invalid_image", f"{where}: image has shape {img.shape}, expected [H, W, 3] RGB"
        if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
            return (
                "invalid_image",
                f"{where}: image dtype is {img.dtype}, expected uint8 or float32 in [0, 1]",
            )
        h, w = img.shape[:2]
        if h == 0 or w == 0:
            return "invalid_image", f"{where}: image is empty ({h}x{w})"
        if h * w > self.config.max_image_pixels:
            return (
                "too_large",
                f"{where}: image is {w}x{h} = {h * w} pixels, more than max_image_pixels "
                f"= {self.config.max_image_pixels}",
            )
        if img.dtype != np.uint8:
            finite = np.isfinite(img)
            if not finite.all():
                n = int(img.size - np.count_nonzero(finite))
                return "non_finite", f"{where}: float image has {n} NaN/inf values"
        return None

    def _reset_reason(self, cam: _Camera, stamp: int, size: tuple[int, int]) -> str:
        if cam.last_stamp_ns is None:
            return "first_frame"
        if cam.pending_reset is not None:
            return cam.pending_reset
        if size != cam.image_size:
            return "resolution_change"
        if stamp < cam.last_stamp_ns:
            return "time_backwards"
        if self._gap_ns > 0 and stamp - cam.last_stamp_ns > self._gap_ns:
            return "gap"
        return ""

    def _fill(self, row: int, image: np.ndarray, geometry: Geometry) -> None:
        """Preprocess ``image`` into batch row ``row`` (uint8)."""
        from rvm_ros.imaging.preprocess import preprocess

        out = self._batch[row]
        if image.dtype != np.uint8:
            # float in [0, 1] (32FC3) -> uint8 round(x * 255), clipped, at the input size:
            # the network then sees exactly what the same image sent as rgb8 gives it.
            image = np.clip(np.rint(image * np.float32(255.0)), 0.0, 255.0).astype(np.uint8)
        res = preprocess(image, geometry, out=out)
        if res is not out:
            out[...] = res

    def _process(self, batch: Sequence[FrameInput]) -> list[FrameResult | FrameSkip]:
        results: list[FrameResult | FrameSkip | None] = [None] * len(batch)
        planned: list[_Planned] = []
        for i, frame in enumerate(batch):
            plan = self._plan(i, frame, row=len(planned))
            if isinstance(plan, FrameSkip):
                results[i] = plan
            else:
                planned.append(plan)
        if planned:
            self._step(planned, results)
        return [r for r in results if r is not None]

    def _plan(self, i: int, frame: FrameInput, row: int) -> _Planned | FrameSkip:
        """Check ``frame``, preprocess it into batch row ``row`` and decide its reset."""
        cam = self._cameras.get(frame.camera)
        if cam is None:
            return self._skip(
                frame,
                None,
                "camera_unknown",
                f"camera {frame.camera!r} is not configured (cameras: {', '.join(self._cameras)})",
            )
        with self._lock:
            cam.stats.frames_in += 1
        problem = self._check_image(frame)
        if problem is not None:
            reason, detail = problem
            if reason == "non_finite":
                with self._lock:
                    if cam.pending_reset is None:
                        cam.pending_reset = "non_finite"
            return self._skip(frame, cam, reason, detail)
        size = (int(frame.image.shape[0]), int(frame.image.shape[1]))
        try:
            geometry = self._geometry(cam, size)
            self._fill(row, frame.image, geometry)
        except (ValueError, cv2.error) as exc:  # ImageError is a ValueError
            return self._skip(
                frame,
                cam,
                "invalid_image",
                f"camera {frame.camera!r} stamp {frame.stamp_ns}: preprocessing failed: {exc}",
            )
        stamp = int(frame.stamp_ns)
        with self._lock:
            reason = self._reset_reason(cam, stamp, size)
            cam.pending_reset = None
        return _Planned(i, frame, cam, size, geometry, reason)

    def _step(self, planned: list[_Planned], results: list[FrameResult | FrameSkip | None]) -> None:
        """One encoder step over the planned frames; their results go into ``results``."""
        for p in planned:
            if p.reset_reason:
                self.encoder.reset(p.cam.name)
        frames = self._batch[: len(planned)]  # [B, H, W, 3] uint8
        names = [p.cam.name for p in planned]
        t0 = time.perf_counter()
        try:
            out = self.encoder.step(frames, names)  # [B, 1 + h*w, D] float32
        except BaseException:
            with self._lock:
                for p in planned:
                    if p.reset_reason and p.reset_reason != "first_frame":
                        p.cam.pending_reset = p.cam.pending_reset or p.reset_reason
            raise
        step_ms = (time.perf_counter() - t0) * 1e3
        out = np.asarray(out)
        n_tokens = 1 + self.grid_height * self.grid_width
        if out.ndim != 3 or out.shape[0] != len(planned) or out.shape[1] != n_tokens:
            raise RuntimeError(
                f"encoder returned shape {out.shape}, expected [{len(planned)}, {n_tokens}, D]"
            )
        for j, p in enumerate(planned):
            results[p.index] = self._finish(p, out[j], step_ms, self._batch[j])

    def _new_ids(self, count: int) -> np.ndarray:
        with self._lock:
            if self._next_id + count > _INT32_MAX:
                raise RuntimeError("track ids exhausted (int32)")
            ids = np.arange(self._next_id, self._next_id + count, dtype=np.int32)
            self._next_id += count
        return ids

    def track(self, job: TrackJob, gap: bool = False) -> ImageTracks | None:
        """Track the camera's points into the frame of ``job`` (see ``defer_tracking``).

        Args:
            job: The frame's tracking work (from `process`, in order per camera).
            gap: Earlier jobs of this camera were dropped: the tracker treats the frame as
                one after a gap.

        Returns:
            The points in input-image pixels, or None when tracking failed on this frame
            (logged and counted in ``tracking_errors``; the tracker starts afresh).
        """
        cam = self._cameras[job.camera]
        if cam.tracking is None:
            return None
        with self._lock:
            queries, cam.queries = cam.queries, None
        try:
            return cam.tracking.update(job, queries, gap)
        except ValueError as exc:
            # The features are fine: they go out without tracks; say why, and start the
            # tracker's context afresh (its points are kept).
            log.warning("camera %r: tracking failed on stamp %d: %s", cam.name, job.stamp_ns, exc)
            cam.tracking.tracker.reset()
            with self._lock:
                cam.stats.tracking_errors += 1
            return None

    def _finish(
        self, p: _Planned, tokens: np.ndarray, step_ms: float, image: np.ndarray
    ) -> FrameResult | FrameSkip:
        cam, frame = p.cam, p.frame
        stamp = int(frame.stamp_ns)
        with self._lock:
            cam.stats.last_step_ms = step_ms
        if p.reset_reason:
            cam.frames_since_reset = 0
            cam.reset_count += 1
            with self._lock:
                cam.stats.resets[p.reset_reason] = cam.stats.resets.get(p.reset_reason, 0) + 1
        cam.last_stamp_ns = stamp
        cam.image_size = p.size
        cam.geometry = p.geometry
        # tokens: [1 + h*w, D] float32. NaN propagates through max/min and inf shows in
        # them: two cheap reductions instead of an elementwise isfinite pass.
        hi, lo = float(tokens.max()), float(tokens.min())
        if not (math.isfinite(hi) and math.isfinite(lo)):
            bad = int(tokens.size - np.count_nonzero(np.isfinite(tokens)))
            return self._non_finite(p, f"model output has {bad} NaN/inf values")
        if self.dtype == np.float16 and max(hi, -lo) >= _FLOAT16_OVERFLOW:
            return self._non_finite(
                p, f"features exceed the float16 range (max |x| = {max(hi, -lo):.6g} > 65504)"
            )
        cls32 = tokens[0]  # [D]
        grid32 = tokens[1:].reshape(self.grid_height, self.grid_width, -1)  # [h, w, D]
        if self.pool > 1:
            k = self.pool
            h, w = self.grid_height // k, self.grid_width // k
            pooled = grid32.reshape(h, k, w, k, -1).mean(axis=(1, 3), dtype=np.float32)
            features = pooled.astype(self.dtype, copy=False)  # [h/k, w/k, D]
        else:
            features = grid32.astype(self.dtype, copy=True)  # [h, w, D]
        cls = cls32.astype(self.dtype, copy=True)  # [D]
        tracks = job = None
        if cam.tracking is not None:
            job = TrackJob(
                camera=cam.name,
                stamp_ns=stamp,
                image=image.copy() if self.defer_tracking else image,  # [H, W, 3] uint8
                features=(grid32.copy() if self.defer_tracking else grid32)
                if cam.tracking.tracker.needs_features
                else None,
                geometry=p.geometry,
                reset_reason=p.reset_reason,
                camera_image=frame.image,  # the tracker's image (read only, never copied)
            )
            if not self.defer_tracking:
                tracks, job = self.track(job), None
        result = FrameResult(
            camera=cam.name,
            header=frame.header,
            stamp_ns=stamp,
            seq=cam.seq,
            features=features,
            cls=cls,
            grid_height=int(features.shape[0]),
            grid_width=int(features.shape[1]),
            frames_since_reset=cam.frames_since_reset,
            state_reset=bool(p.reset_reason),
            reset_reason=p.reset_reason,
            reset_count=cam.reset_count,
            geometry=p.geometry,
            cell_size=self.cell_size,
            pool=self.pool,
            model_id=self.model_id,
            step_ms=step_ms,
            tracks=tracks,
            track_job=job,
        )
        cam.seq += 1
        cam.frames_since_reset += 1
        with self._lock:
            cam.stats.processed += 1
        return result

    def _non_finite(self, p: _Planned, what: str) -> FrameSkip:
        cam = p.cam
        self.encoder.reset(cam.name)
        with self._lock:
            cam.pending_reset = "non_finite"
        detail = (
            f"camera {cam.name!r} stamp {p.frame.stamp_ns}: {what}; output dropped, "
            "state reset before the next frame"
        )
        log.debug(detail)
        return self._skip(p.frame, cam, "non_finite", detail)
