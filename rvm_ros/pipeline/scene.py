"""One synchronised multi-camera step (SceneTokens) from one batch of processed frames.

Pure Python and numpy. The node batches the cameras that deliver within
``max_batch_wait_ms`` (`rvm_ros.pipeline.batching`) and the bag replay groups frames by
stamp; each batch's results go to :meth:`SceneAssembler.assemble`, which:

* orders cameras as configured; a camera without a frame in this batch is ``missing``
  (late or dropped) and its token row is zeros: tokens of an earlier step are never
  reused;
* takes the step stamp as the lower median of the stamps of the cameras with tokens and
  marks cameras further than the tolerance from it ``out_of_sync``;
* attaches each camera's geometry (`rvm_ros.pipeline.geometry`): a camera without
  CameraInfo or transform is invalid (``no_camera_info``, ``camera_info_mismatch``,
  ``no_transform``) with NaN matrices, never zeros;
* applies the synchronisation policy: ``partial`` publishes every step (complete or not),
  ``complete`` only steps where every camera is valid (the others are counted as dropped).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias, Union

import numpy as np

from rvm_ros.imaging.preprocess import Geometry, fit_geometry
from rvm_ros.pipeline.config import ConfigError, NodeConfig
from rvm_ros.pipeline.geometry import CameraIntrinsics, SceneGeometry, camera_geometry
from rvm_ros.pipeline.types import FrameResult, FrameSkip

if TYPE_CHECKING:
    import array

__all__ = [
    "INVALID_REASONS",
    "SYNC_POLICIES",
    "PayloadBuffer",
    "SceneAssembler",
    "SceneCamera",
    "SceneStats",
    "SceneStep",
]

#: A writable buffer the tokens are written into (e.g. the ``array.array('B')`` an rclpy
#: message takes without copying).
PayloadBuffer: TypeAlias = Union[bytearray, "array.array[int]"]

# The inputs a camera's cached SceneGeometry was computed from.
_GeometryKey: TypeAlias = tuple[
    "CameraIntrinsics | None", "tuple[np.ndarray, str] | None", "Geometry | None", str
]

#: ``partial``: publish when all cameras arrived or the batching wait expired;
#: ``complete``: publish only steps in which every camera is valid.
SYNC_POLICIES: tuple[str, ...] = ("partial", "complete")

#: CameraGeometry.invalid_reason values (``skipped_<reason>`` adds the skip reason).
INVALID_REASONS: tuple[str, ...] = (
    "missing",
    "out_of_sync",
    "skipped",
    "grid_mismatch",
    "no_camera_info",
    "camera_info_mismatch",
    "no_transform",
)


@dataclass(frozen=True, eq=False)
class SceneCamera:
    """One camera of a step.

    Attributes:
        camera: Camera name.
        stamp_ns: Its frame's stamp in this step (0 without a frame).
        frame_id: Camera frame (CameraInfo's, else the image header's).
        valid: Tokens and geometry usable.
        reason: ``""`` when valid, else why not (see :data:`INVALID_REASONS`).
        has_tokens: Its token row holds this step's features.
        state_reset: The recurrent state was reset before this frame.
        frames_since_reset: Frames since the last reset.
        geometry: The preprocessing of its latest image (None before its first frame).
        scene: Intrinsics, extrinsics and projection (NaN where unknown).
    """

    camera: str
    stamp_ns: int
    frame_id: str
    valid: bool
    reason: str
    has_tokens: bool
    state_reset: bool
    frames_since_reset: int
    geometry: Geometry | None
    scene: SceneGeometry


@dataclass(frozen=True, eq=False)
class SceneStep:
    """Every configured camera for one step (what SceneTokens carries).

    Attributes:
        seq: Steps emitted before this one.
        stamp_ns: Step stamp.
        cameras: One :class:`SceneCamera` per configured camera, in order.
        tokens: ``[N_cam, 1 + h*w, C]`` (CLS first, grid row-major), zeros for rows
            without tokens; owned by the step.
        grid_height: Feature rows h.
        grid_width: Feature columns w.
        model_height: Network input rows.
        model_width: Network input columns.
        cell_size: Network pixels per cell side.
        model_id: Encoder model id.
        payload: The buffer ``tokens`` is a little-endian view of, when the caller supplied
            one (see :meth:`SceneAssembler.assemble`), else None.
    """

    seq: int
    stamp_ns: int
    cameras: tuple[SceneCamera, ...]
    tokens: np.ndarray
    grid_height: int
    grid_width: int
    model_height: int
    model_width: int
    cell_size: int
    model_id: str
    payload: PayloadBuffer | None = None

    @property
    def complete(self) -> bool:
        """Every camera valid."""
        return all(c.valid for c in self.cameras)

    @property
    def names(self) -> tuple[str, ...]:
        """Camera names in order."""
        return tuple(c.camera for c in self.cameras)

    @property
    def channels(self) -> int:
        """Token channels C."""
        return int(self.tokens.shape[2])


@dataclass
class SceneStats:
    """Counters of a :class:`SceneAssembler` (a snapshot when read from ``stats()``).

    Attributes:
        complete: Steps emitted with every camera valid.
        partial: Steps emitted with at least one invalid camera.
        dropped_partial: Partial steps not emitted (policy ``complete``).
        invalid: Camera -> reason -> steps in which it was invalid for that reason.
    """

    complete: int = 0
    partial: int = 0
    dropped_partial: int = 0
    invalid: dict[str, Counter[str]] = field(default_factory=dict)


class SceneAssembler:
    """Builds :class:`SceneStep` s from batches of `Processor` outputs (thread-safe).

    Args:
        cameras: Configured camera order.
        model_height: Network input rows.
        model_width: Network input columns.
        cell_size: Network pixels per (pooled) cell side.
        policy: One of :data:`SYNC_POLICIES`.
        tolerance_ms: Largest ``|camera stamp - step stamp|`` of a valid camera (ms).
        resize_mode: The preprocessing mode (for cameras whose first frame is still to
            come, so that their CameraInfo size stands in for the image size).

    Raises:
        ConfigError: Unknown policy, negative tolerance, no cameras, bad sizes.
    """

    @classmethod
    def for_config(cls, cfg: NodeConfig, patch_size: int) -> SceneAssembler:
        """The assembler of a node configuration (``NodeConfig``: cameras, processing,
        scene_tokens), for a model of ``patch_size`` (the runtime's ``info.patch_size``)."""
        sc, pc = cfg.scene_tokens, cfg.processing
        return cls(
            cfg.cameras,
            pc.model_height,
            pc.model_width,
            patch_size * pc.feature_pool,
            sc.sync_policy,
            sc.tolerance_ms,
            pc.resize_mode,
        )

    def __init__(
        self,
        cameras: Sequence[str],
        model_height: int,
        model_width: int,
        cell_size: int,
        policy: str = "partial",
        tolerance_ms: float = 50.0,
        resize_mode: str = "stretch",
    ) -> None:
        if not cameras:
            raise ConfigError("cameras", "at least one camera is needed")
        if policy not in SYNC_POLICIES:
            raise ConfigError(
                "scene_tokens.sync_policy",
                f"must be one of {' | '.join(SYNC_POLICIES)}, got {policy!r}",
            )
        if not tolerance_ms >= 0:
            raise ConfigError("scene_tokens.tolerance_ms", f"must be >= 0, got {tolerance_ms!r}")
        if cell_size <= 0 or model_height % cell_size or model_width % cell_size:
            raise ConfigError(
                "feature_pool",
                f"cell size {cell_size} must divide the network input {model_width}x{model_height}",
            )
        self.cameras = tuple(cameras)
        self.model_height = int(model_height)
        self.model_width = int(model_width)
        self.cell_size = int(cell_size)
        self.grid_height = self.model_height // self.cell_size
        self.grid_width = self.model_width // self.cell_size
        self.policy = policy
        fit_geometry(1, 1, self.model_height, self.model_width, resize_mode)  # validates
        self.resize_mode = resize_mode
        self.tolerance_ns = round(tolerance_ms * 1e6)
        self._lock = threading.Lock()
        self._intrinsics: dict[str, CameraIntrinsics | None] = dict.fromkeys(self.cameras)
        self._extrinsics: dict[str, tuple[np.ndarray, str] | None] = dict.fromkeys(self.cameras)
        self._last_geometry: dict[str, Geometry | None] = dict.fromkeys(self.cameras)
        self._cache: dict[str, tuple[_GeometryKey, SceneGeometry]] = {}
        self._seq = 0
        self._channels: int | None = None
        self._dtype: np.dtype | None = None
        self._model_id = ""
        self._stats = SceneStats(invalid={c: Counter() for c in self.cameras})

    # -- geometry sources ------------------------------------------------------------

    def set_intrinsics(self, camera: str, intrinsics: CameraIntrinsics | None) -> None:
        """The camera's latest CameraInfo (None: forget it). Unknown cameras are ignored."""
        with self._lock:
            if camera in self._intrinsics:
                self._intrinsics[camera] = intrinsics

    def set_extrinsics(
        self, camera: str, camera_to_base: np.ndarray | None, source: str = "static"
    ) -> None:
        """The camera's ``[4, 4]`` camera-to-base transform and its source (None: unknown)."""
        with self._lock:
            if camera not in self._extrinsics:
                return
            if camera_to_base is None:
                self._extrinsics[camera] = None
                return
            prev = self._extrinsics[camera]
            t = np.asarray(camera_to_base, dtype=np.float64).reshape(4, 4)
            if prev is not None and prev[1] == source and np.array_equal(prev[0], t):
                return  # same transform: keep the cached geometry
            self._extrinsics[camera] = (t, source)

    def intrinsics(self, camera: str) -> CameraIntrinsics | None:
        """The camera's current intrinsics (None: no CameraInfo yet)."""
        with self._lock:
            return self._intrinsics.get(camera)

    def _scene_geometry(self, cam: str, geometry: Geometry | None, frame_id: str) -> SceneGeometry:
        intr = self._intrinsics[cam]
        extr = self._extrinsics[cam]
        hit = self._cache.get(cam)
        if hit is not None:
            k_intr, k_extr, k_geom, k_frame = hit[0]
            # The cached objects are held by the key, so identity cannot be recycled.
            if k_intr is intr and k_extr is extr and k_geom == geometry and k_frame == frame_id:
                return hit[1]
        if geometry is None:
            # No frame yet: the image size (hence the preprocessing) is unknown; assume
            # the CameraInfo size so the intrinsics still show.
            h = intr.height if intr is not None else self.model_height
            w = intr.width if intr is not None else self.model_width
            geometry_used = fit_geometry(
                h, w, self.model_height, self.model_width, self.resize_mode
            )
        else:
            geometry_used = geometry
        scene = camera_geometry(
            intr,
            None if extr is None else extr[0],
            "" if extr is None else extr[1],
            geometry_used,
            self.cell_size,
            frame_id,
        )
        self._cache[cam] = ((intr, extr, geometry, frame_id), scene)
        return scene

    # -- steps -----------------------------------------------------------------------

    def assemble(
        self,
        outputs: Sequence[FrameResult | FrameSkip],
        frame_ids: Mapping[str, str] | None = None,
        payload: Callable[[int], PayloadBuffer] | None = None,
    ) -> SceneStep | None:
        """The step of one batch.

        Args:
            outputs: `Processor.process` results of one batch (any order; cameras not
                configured are ignored).
            frame_ids: Camera -> image header frame id (used where CameraInfo names none).
            payload: ``nbytes -> writable buffer`` (e.g. an ``array.array('B')`` that an
                rclpy message takes without copying); the tokens are written straight
                into it (little endian) and it is kept as ``SceneStep.payload``.

        Returns:
            The step, or None when the policy drops it (``complete`` and not complete) or
            no camera has ever produced tokens (the channel count is still unknown).
        """
        frame_ids = frame_ids or {}
        with self._lock:
            by_cam = self._take(outputs)
            if self._channels is None or self._dtype is None:
                return None
            results = [o for o in by_cam.values() if isinstance(o, FrameResult)]
            stamps = sorted(o.stamp_ns for o in results) or sorted(
                o.stamp_ns for o in by_cam.values()
            )
            stamp = stamps[(len(stamps) - 1) // 2] if stamps else 0
            n_tok = 1 + self.grid_height * self.grid_width
            shape = (len(self.cameras), n_tok, self._channels)
            tokens, buffer = self._tokens(shape, self._dtype, payload)
            cams = [
                self._camera(i, cam, by_cam.get(cam), tokens, stamp, frame_ids.get(cam, ""))
                for i, cam in enumerate(self.cameras)
            ]
            if not self._count(cams):
                return None
            step = SceneStep(
                self._seq,
                stamp,
                tuple(cams),
                tokens,
                self.grid_height,
                self.grid_width,
                self.model_height,
                self.model_width,
                self.cell_size,
                self._model_id,
                buffer,
            )
            self._seq += 1
            return step

    def _take(
        self, outputs: Sequence[FrameResult | FrameSkip]
    ) -> dict[str, FrameResult | FrameSkip]:
        """The configured cameras' outputs; each result updates the token format and its
        camera's last geometry."""
        by_cam: dict[str, FrameResult | FrameSkip] = {}
        for given in outputs:
            if given.camera in self._intrinsics:
                by_cam[given.camera] = given
        for r in by_cam.values():
            if isinstance(r, FrameResult):
                self._channels = int(r.features.shape[-1])
                self._dtype = np.dtype(r.features.dtype)
                self._model_id = r.model_id
                self._last_geometry[r.camera] = r.geometry
        return by_cam

    @staticmethod
    def _tokens(
        shape: tuple[int, int, int], dtype: np.dtype, payload: Callable[[int], PayloadBuffer] | None
    ) -> tuple[np.ndarray, PayloadBuffer | None]:
        """The step's ``[N, 1 + h*w, C]`` token array, a little-endian view of the caller's
        buffer when ``payload`` is given (the buffer is returned with it)."""
        if payload is None:
            return np.empty(shape, dtype=dtype), None
        little = dtype.newbyteorder("<")
        buffer = payload(int(np.prod(shape)) * little.itemsize)
        return np.frombuffer(buffer, dtype=little).reshape(shape), buffer

    def _camera(
        self,
        i: int,
        cam: str,
        out: FrameResult | FrameSkip | None,
        tokens: np.ndarray,
        stamp: int,
        frame_id: str,
    ) -> SceneCamera:
        """Camera ``i``'s row of the step: its tokens written into ``tokens[i]`` (zeros when
        it has none), its validity and its geometry."""
        has_tokens = False
        reason = ""
        stamp_i, reset, since = 0, False, 0
        if out is None:
            reason = "missing"
        elif isinstance(out, FrameSkip):
            reason = f"skipped_{out.reason}"
            stamp_i = out.stamp_ns
        else:
            stamp_i, reset, since = out.stamp_ns, out.state_reset, out.frames_since_reset
            if out.features.shape[:2] != (self.grid_height, self.grid_width):
                reason = "grid_mismatch"
            else:
                tokens[i, 0] = out.cls
                tokens[i, 1:] = out.features.reshape(tokens.shape[1] - 1, tokens.shape[2])
                has_tokens = True
                if abs(stamp_i - stamp) > self.tolerance_ns:
                    reason = "out_of_sync"
        if not has_tokens:
            tokens[i].fill(0)
        geometry = self._last_geometry[cam]
        scene = self._scene_geometry(cam, geometry, frame_id)
        reason = reason or scene.reason
        return SceneCamera(
            cam,
            stamp_i,
            scene.frame_id or frame_id,
            not reason,
            reason,
            has_tokens,
            reset,
            since,
            geometry,
            scene,
        )

    def _count(self, cams: list[SceneCamera]) -> bool:
        """Count the step's invalid cameras and the step; False when the policy drops it."""
        for c in cams:
            if c.reason:
                self._stats.invalid[c.camera][c.reason] += 1
        complete = all(c.valid for c in cams)
        if not complete and self.policy == "complete":
            self._stats.dropped_partial += 1
            return False
        if complete:
            self._stats.complete += 1
        else:
            self._stats.partial += 1
        return True

    def stats(self) -> SceneStats:
        """A snapshot of the counters."""
        with self._lock:
            s = self._stats
            return SceneStats(
                s.complete,
                s.partial,
                s.dropped_partial,
                {c: Counter(v) for c, v in s.invalid.items()},
            )
