"""Inputs and outputs of the processing core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rvm_ros.imaging.preprocess import Geometry

# Reset reasons (FeatureMap.reset_reason), in the order of precedence when several apply.
__all__ = [
    "RESET_REASONS",
    "SKIP_REASONS",
    "CameraStats",
    "FrameInput",
    "FrameResult",
    "FrameSkip",
    "ImageTracks",
    "TrackJob",
]

RESET_REASONS: tuple[str, ...] = (
    "first_frame",
    "non_finite",
    "service",
    "resolution_change",
    "time_backwards",
    "gap",
)

# Skip reasons (FrameSkip.reason).
SKIP_REASONS: tuple[str, ...] = (
    "camera_unknown",  # the camera is not in ProcessingConfig.cameras
    "invalid_image",  # not an RGB [H, W, 3] uint8 / float array, or empty
    "too_large",  # more than max_image_pixels pixels
    "non_finite",  # NaN/inf in a float image or in the model output, or features beyond
    # the float16 range; the camera's state is reset before its next frame
)


@dataclass(frozen=True)
class FrameInput:
    """One decoded camera frame.

    Attributes:
        camera: Camera name (one of `ProcessingConfig.cameras`).
        stamp_ns: Capture time in nanoseconds (the image header stamp).
        header: Opaque; handed back unchanged (the same object) in the output.
        image: RGB ``[H, W, 3]``, uint8, or float32 in [0, 1] (``32FC3``).
    """

    camera: str
    stamp_ns: int
    header: Any  # Any: opaque, the caller's (rclpy Header; replay: a tuple)
    image: np.ndarray


@dataclass(frozen=True, eq=False)
class TrackJob:
    """One frame's point-tracking work, handed from the model step to `Processor.track`.

    Attributes:
        camera: Camera name.
        stamp_ns: The frame's stamp.
        image: uint8 ``[H, W, 3]`` network input the step saw (owned by the job).
        features: float32 ``[h, w, D]`` unpooled grid features (owned), or None when the
            tracker reads none.
        geometry: How input-image pixels map to network pixels.
        reset_reason: The frame's state-reset reason (``""``: none).
        camera_image: The camera image as received (RGB ``[H, W, 3]`` uint8 or float32 in
            [0, 1]; a reference, never written): what the tracker tracks on. None: track
            on ``image`` (its positions mapped through ``geometry``).
    """

    camera: str
    stamp_ns: int
    image: np.ndarray
    features: np.ndarray | None
    geometry: Geometry
    reset_reason: str
    camera_image: np.ndarray | None = None


@dataclass(frozen=True)
class ImageTracks:
    """Tracked points of one frame, in input-image pixels.

    Attributes:
        ids: int32 ``[P]`` track ids (never reused by a `Processor`).
        x: float32 ``[P]`` column in input-image pixels (x right, origin top-left corner).
        y: float32 ``[P]`` row in input-image pixels (y down).
        visible: bool ``[P]``; False when the tracker judges the point occluded.
        confidence: float32 ``[P]`` tracker confidence in [0, 1].
    """

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray

    @property
    def xy(self) -> np.ndarray:
        """float32 ``[P, 2]`` positions (x, y) in input-image pixels."""
        return np.stack([self.x, self.y], axis=-1)

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class FrameResult:
    """The processed output of one frame of one camera.

    Attributes:
        camera: Camera name.
        header: The input's header object, unchanged.
        stamp_ns: The input's stamp.
        seq: Frames processed for this camera before this one (starts at 0).
        features: ``[grid_height, grid_width, C]`` pooled patch features in `dtype`.
        cls: ``[C]`` CLS token in `dtype`.
        grid_height: Feature grid rows after pooling.
        grid_width: Feature grid columns after pooling.
        frames_since_reset: Frames processed since the state was reset (0: fresh state).
        state_reset: True when the state was reset before this frame.
        reset_reason: Why (one of `RESET_REASONS`), ``""`` when not reset.
        reset_count: Resets of this camera so far, this one included.
        geometry: How input-image pixels map to network pixels.
        cell_size: Network pixels per (pooled) feature cell side: patch size * pool.
        pool: Average pooling applied to the grid.
        model_id: The encoder's model id.
        step_ms: Wall time of the batched encoder step this frame ran in.
        tracks: Tracked points in image pixels, or None when tracking is off or deferred.
        track_job: With ``Processor(defer_tracking=True)``: the frame's tracking work for
            `Processor.track` (then ``tracks`` is None); None otherwise.
    """

    camera: str
    header: Any  # Any: the input's header object, handed back unchanged
    stamp_ns: int
    seq: int
    features: np.ndarray
    cls: np.ndarray
    grid_height: int
    grid_width: int
    frames_since_reset: int
    state_reset: bool
    reset_reason: str
    reset_count: int
    geometry: Geometry
    cell_size: int
    pool: int
    model_id: str
    step_ms: float
    tracks: ImageTracks | None = None
    track_job: TrackJob | None = None

    @property
    def channels(self) -> int:
        """Feature channels C."""
        return int(self.features.shape[-1])


@dataclass(frozen=True)
class FrameSkip:
    """A frame that produced no output, and why.

    Attributes:
        camera: Camera name as given.
        stamp_ns: The input's stamp.
        header: The input's header object, unchanged.
        reason: Stable key (one of `SKIP_REASONS`), for counters and reports.
        detail: Human-readable explanation naming the camera and what was wrong.
    """

    camera: str
    stamp_ns: int
    header: Any  # Any: the input's header object, handed back unchanged
    reason: str
    detail: str


@dataclass
class CameraStats:
    """Counters of one camera (a snapshot when read from `Processor.stats`).

    Attributes:
        frames_in: Frames handed to `Processor.process`.
        processed: Frames that produced a `FrameResult`.
        skipped: `FrameSkip` counts by reason.
        resets: State resets by reason.
        last_step_ms: Step time of the last batch this camera was in.
        tracking_errors: Frames published without tracks because the tracker failed.
    """

    frames_in: int = 0
    processed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    resets: dict[str, int] = field(default_factory=dict)
    last_step_ms: float = 0.0
    tracking_errors: int = 0

    @property
    def reset_count(self) -> int:
        """All resets of this camera."""
        return sum(self.resets.values())

    @property
    def skipped_count(self) -> int:
        """All skipped frames of this camera."""
        return sum(self.skipped.values())

    def copy(self) -> CameraStats:
        """An independent copy."""
        return CameraStats(
            self.frames_in,
            self.processed,
            dict(self.skipped),
            dict(self.resets),
            self.last_step_ms,
            self.tracking_errors,
        )
