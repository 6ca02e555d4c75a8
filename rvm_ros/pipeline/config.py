"""The validated, frozen settings shared by the live node and the bag replay.

* `ProcessingConfig`: the processing core (`rvm_ros.pipeline.Processor`), validated on
  construction;
* `SceneTokensConfig`: the ``scene_tokens.*`` and per-camera geometry settings;
* `NodeConfig`: the node's whole configuration (the two above, runtime, QoS, topics).

The node's ROS parameters (and the bag replay's parameter file) become a `NodeConfig` in
one place, :func:`rvm_ros.pipeline.params.config_from_params`, so both run the same
processing. `ConfigError` names the offending parameter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rvm_ros.errors import RvmRosError

if TYPE_CHECKING:
    from rvm_ros.tracking.config import TrackerConfig

__all__ = [
    "CAMERA_NAME",
    "EXTRINSICS_SOURCES",
    "FEATURE_DTYPES",
    "FEATURE_POOLS",
    "RESIZE_MODES",
    "ConfigError",
    "NodeConfig",
    "ProcessingConfig",
    "SceneTokensConfig",
]

RESIZE_MODES: tuple[str, ...] = ("stretch", "letterbox", "center_crop")
FEATURE_DTYPES: tuple[str, ...] = ("float16", "float32")
FEATURE_POOLS: tuple[int, ...] = (1, 2, 4)
#: ``auto``: static parameters where a camera has them, else TF; ``static``; ``tf``.
EXTRINSICS_SOURCES: tuple[str, ...] = ("auto", "static", "tf")

#: A valid camera name: camera names become topic name tokens (``~/<camera>/features``).
CAMERA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ConfigError(RvmRosError, ValueError):
    """An invalid setting.

    Attributes:
        param: The name of the offending parameter (e.g. ``"feature_pool"``).
        message: What is wrong with it (e.g. ``"must be 1, 2 or 4, got 3"``).
    """

    cause = "invalid_config"
    exit_code = 2

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        self.message = message
        text = message if message.startswith(param) else f"{param}: {message}"
        super().__init__(text)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str]]:
        return (type(self), (self.param, self.message))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ProcessingConfig:
    """Settings of `rvm_ros.pipeline.Processor` (validated on construction).

    Attributes:
        cameras: Camera names (unique; letters, digits and ``_``, starting with a letter).
        model_height: Network input height in pixels (multiple of the patch size, 16).
        model_width: Network input width in pixels (multiple of the patch size, 16).
        resize_mode: How images are fitted to the network input: ``stretch``,
            ``letterbox`` or ``center_crop`` (see `rvm_ros.imaging.preprocess`).
        reset_on_gap_s: Reset a camera's recurrent state when its frames are more than
            this many seconds apart; ``0`` disables the gap rule.
        feature_dtype: Element type of the output features: ``float16`` or ``float32``.
        feature_pool: Average pooling of the feature grid: 1 (none), 2 or 4. The grid
            (model size / 16) must be divisible by it.
        max_batch_wait_ms: Frames of different cameras whose stamps (offline) or
            arrival times (live) lie within this window run as one batched step.
        max_image_pixels: Input images with more pixels than this are rejected.
        tracking: Track points and report them with every result.
        track_grid: N > 0 tracks an N x N grid of points (spread evenly over the
            network input) seeded on the first frame after each state reset; 0: none.
        track_corners: N > 0 seeds up to N automatic points on Shi-Tomasi corners of the
            first frame after each state reset; 0: none.
        track_reseed_s: automatic points (grid or corners) not visible for longer than
            this many seconds (frame stamps) are replaced by new corner points with new
            ids, up to ``track_corners`` (or the grid's size); 0: never.
        tracker: Settings of the tracker (`rvm_ros.tracking.TrackerConfig`, its ``method``
            picks it); None uses its defaults.

    Raises:
        ConfigError: On construction, for the first invalid field (``param`` names it).
    """

    cameras: tuple[str, ...]
    model_height: int = 256
    model_width: int = 256
    resize_mode: str = "stretch"
    reset_on_gap_s: float = 1.0
    feature_dtype: str = "float16"
    feature_pool: int = 1
    max_batch_wait_ms: float = 5.0
    max_image_pixels: int = 4096 * 4096
    tracking: bool = True
    track_grid: int = 0
    track_corners: int = 0
    track_reseed_s: float = 1.0
    tracker: TrackerConfig | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, patch_size: int = 16) -> None:
        """Check every field.

        Args:
            patch_size: Pixels per feature cell side of the model (16 for RVM).

        Raises:
            ConfigError: For the first invalid field.
        """
        self._check_cameras()
        self._check_model_input(patch_size)
        self._check_numbers()
        self._check_tracking()

    def _check_cameras(self) -> None:
        cams = self.cameras
        if isinstance(cams, str) or not isinstance(cams, (tuple, list)):
            raise ConfigError("cameras", f"must be a tuple of camera names, got {cams!r}")
        if isinstance(cams, list):
            object.__setattr__(self, "cameras", tuple(cams))
        if not cams:
            raise ConfigError("cameras", "at least one camera is needed")
        seen: set[str] = set()
        for name in cams:
            if not isinstance(name, str) or not CAMERA_NAME.match(name):
                raise ConfigError(
                    "cameras",
                    f"camera name {name!r} is not valid (letters, digits and '_', "
                    "starting with a letter)",
                )
            if name in seen:
                raise ConfigError("cameras", f"camera {name!r} is listed twice")
            seen.add(name)

    def _check_model_input(self, patch_size: int) -> None:
        """Input size, resize mode, reset gap, feature dtype and pooling."""
        for key in ("model_height", "model_width"):
            value = getattr(self, key)
            if not _is_int(value) or value <= 0 or value % patch_size:
                raise ConfigError(
                    key,
                    f"must be a positive multiple of {patch_size} (the patch size), got {value!r}",
                )
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(
                "resize_mode", f"must be one of {', '.join(RESIZE_MODES)}, got {self.resize_mode!r}"
            )
        gap = self.reset_on_gap_s
        if not _is_number(gap) or not math.isfinite(gap) or gap < 0:
            raise ConfigError(
                "reset_on_gap_s", f"must be a finite number >= 0 (0 disables), got {gap!r}"
            )
        if self.feature_dtype not in FEATURE_DTYPES:
            raise ConfigError(
                "feature_dtype", f"must be float16 or float32, got {self.feature_dtype!r}"
            )
        pool = self.feature_pool
        if not _is_int(pool) or pool not in FEATURE_POOLS:
            raise ConfigError("feature_pool", f"feature_pool must be 1, 2 or 4, got {pool!r}")
        grid_h, grid_w = self.model_height // patch_size, self.model_width // patch_size
        if grid_h % pool or grid_w % pool:
            raise ConfigError(
                "feature_pool",
                f"feature_pool {pool} does not divide the {grid_h}x{grid_w} feature grid of a "
                f"{self.model_height}x{self.model_width} model input",
            )

    def _check_numbers(self) -> None:
        """Batching window and image size limit."""
        wait = self.max_batch_wait_ms
        if not _is_number(wait) or not math.isfinite(wait) or wait < 0:
            raise ConfigError("max_batch_wait_ms", f"must be a finite number >= 0, got {wait!r}")
        if not _is_int(self.max_image_pixels) or self.max_image_pixels <= 0:
            raise ConfigError(
                "max_image_pixels", f"must be a positive integer, got {self.max_image_pixels!r}"
            )

    def _check_tracking(self) -> None:
        if not isinstance(self.tracking, bool):
            raise ConfigError("tracking", f"must be true or false, got {self.tracking!r}")
        if not _is_int(self.track_grid) or self.track_grid < 0:
            raise ConfigError(
                "track_grid", f"must be an integer >= 0 (0: none), got {self.track_grid!r}"
            )
        if not _is_int(self.track_corners) or self.track_corners < 0:
            raise ConfigError(
                "track_corners",
                f"must be an integer >= 0 (0: none), got {self.track_corners!r}",
            )
        reseed = self.track_reseed_s
        if (
            isinstance(reseed, bool)
            or not isinstance(reseed, (int, float))
            or not (0 <= reseed < math.inf)
        ):
            raise ConfigError(
                "track_reseed_s", f"must be a finite number >= 0 (0: never), got {reseed!r}"
            )
        if self.tracker is not None:
            from rvm_ros.tracking.config import TrackerConfig

            if not isinstance(self.tracker, TrackerConfig):
                raise ConfigError(
                    "tracker",
                    f"must be a rvm_ros.tracking.config.TrackerConfig or None, got "
                    f"{type(self.tracker).__name__}",
                )


@dataclass(frozen=True, eq=False)
class SceneTokensConfig:
    """Scene-token settings.

    Attributes:
        enabled: Publish ``~/scene_tokens`` (replay: write it).
        base_frame: The frame of ``camera_to_base`` / ``projection``.
        sync_policy: ``partial`` | ``complete`` (see `rvm_ros.pipeline.scene`).
        tolerance_ms: Largest camera-to-step stamp difference of a valid camera.
        extrinsics: ``auto`` | ``static`` | ``tf``.
        camera_info_topics: Camera -> CameraInfo topic.
        static_extrinsics: Camera -> ``[4, 4]`` camera-to-base (cameras with static
            parameters only).
    """

    enabled: bool = False
    base_frame: str = "base_link"
    sync_policy: str = "partial"
    tolerance_ms: float = 50.0
    extrinsics: str = "auto"
    camera_info_topics: dict[str, str] = field(default_factory=dict)
    static_extrinsics: dict[str, np.ndarray] = field(default_factory=dict)

    def extrinsics_source(self, camera: str) -> str:
        """Where the camera's transform comes from: ``static``, ``tf`` or ``""`` (none)."""
        has_static = camera in self.static_extrinsics
        if self.extrinsics == "static":
            return "static" if has_static else ""
        if self.extrinsics == "tf":
            return "tf"
        return "static" if has_static else "tf"


@dataclass(frozen=True)
class NodeConfig:
    """The node's whole configuration, validated (built only by
    :func:`rvm_ros.pipeline.params.config_from_params`).

    Attributes:
        processing: Everything the pure processing core needs.
        checkpoint: Checkpoint path or ``random:<variant>[:<seed>]``.
        backend: ``auto`` | ``torch`` | ``onnxruntime`` | ``tensorrt`` | ``openvino``.
        precision: ``fp32`` | ``fp16`` | ``bf16``.
        device: Torch device string, empty for the backend's choice.
        tensorrt_accept_build_error: Use a TensorRT engine that failed its build check.
        camera_topics: Camera name -> input topic.
        camera_transports: Camera name -> ``raw`` | ``compressed``.
        input_reliability: ``best_effort`` | ``reliable`` (image subscriptions).
        input_depth: History depth of the image subscriptions.
        raw_subscriptions: Subscribe to images in serialized form (zero-copy CDR decoding).
        retain_large_buffers: Raise glibc's mmap / trim thresholds (`rvm_ros.node.memory`).
        opencv_threads: OpenCV's worker threads (process-wide; 0: OpenCV's default).
        output_reliability: ``best_effort`` | ``reliable`` (publishers).
        output_depth: History depth of the publishers.
        publish_debug_image: Publish debug images while subscribed.
        tracking_thread: Track points on a thread of their own (`Processor.track`).
        diagnostics_period_s: Period of ``/diagnostics`` (s).
        autostart: Configure and activate on start-up.
        executor: ``auto`` | ``events`` | ``single_threaded`` (`rvm_ros.node.executor`).
        scene_tokens: The ``scene_tokens.*`` and per-camera geometry parameters.
    """

    processing: ProcessingConfig
    checkpoint: str
    backend: str
    precision: str
    device: str
    camera_topics: dict[str, str] = field(default_factory=dict)
    camera_transports: dict[str, str] = field(default_factory=dict)
    input_reliability: str = "best_effort"
    input_depth: int = 1
    raw_subscriptions: bool = True
    retain_large_buffers: bool = True
    opencv_threads: int = 1
    output_reliability: str = "reliable"
    output_depth: int = 5
    publish_debug_image: bool = True
    tracking_thread: bool = True
    diagnostics_period_s: float = 1.0
    autostart: bool = True
    executor: str = "auto"
    tensorrt_accept_build_error: bool = False
    scene_tokens: SceneTokensConfig = field(default_factory=SceneTokensConfig)

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names in configuration order."""
        return tuple(self.camera_topics)
