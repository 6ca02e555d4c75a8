"""The node's parameter table: every parameter declared once, with type and constraints.

:data:`PARAMS` is what the node declares (plus the per-camera ``cameras.<name>.*``
parameters of :data:`CAMERA_PARAM_SUFFIXES`);
:func:`~rvm_ros.pipeline.params.config_from_params` checks values against it.
Pure Python (no rclpy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias, Union

__all__ = [
    "CAMERA_PARAM_SUFFIXES",
    "PARAMS",
    "TRANSPORTS",
    "ParamSpec",
    "ParamValue",
    "camera_param_defaults",
    "unknown_parameters",
]

#: A parameter value of one of the table's kinds (``str_list``: a list, or a tuple once
#: checked).
ParamValue: TypeAlias = Union[bool, int, float, str, list[str], tuple[str, ...]]  # noqa: UP007

# Per-camera parameters: cameras.<name>.<suffix>.
CAMERA_PARAM_SUFFIXES: tuple[str, ...] = (
    "topic",
    "transport",
    "camera_info_topic",  # scene tokens: sensor_msgs/CameraInfo of the camera
    "translation",  # scene tokens: static camera-to-base translation [x, y, z] (m)
    "rotation",  # scene tokens: static camera-to-base quaternion [x, y, z, w]
)
TRANSPORTS: tuple[str, ...] = ("raw", "compressed")


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: name, default, type and constraints.

    Attributes:
        name: Parameter name (dotted for nested names).
        default: Default value (also fixes the expected type).
        kind: ``"bool"``, ``"int"``, ``"float"``, ``"str"`` or ``"str_list"``.
        description: One line for ``ros2 param describe``.
        choices: Allowed values (strings) or empty for any.
        min_value: Inclusive lower bound for numbers.
        max_value: Inclusive upper bound for numbers.
    """

    name: str
    default: ParamValue
    kind: str
    description: str
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None

    def constraint_text(self) -> str:
        """Human-readable constraint (for the parameter descriptor)."""
        parts = []
        if self.choices:
            parts.append("one of " + " | ".join(self.choices))
        if self.min_value is not None:
            parts.append(f">= {self.min_value:g}")
        if self.max_value is not None:
            parts.append(f"<= {self.max_value:g}")
        return ", ".join(parts)


_SIZE_TEXT = (
    "Network input {} (multiple of 16); 0: the size the checkpoint was trained at, from "
    "its model card (128 for builtin:default, 256 for official checkpoints; 128 when the "
    "card does not say). Another size works, with a warning naming both"
)

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "checkpoint",
        "builtin:default",
        "str",
        "RVM checkpoint: builtin:default (the shipped model), official .npz, project "
        ".safetensors, random:<variant>[:<seed>], or a TensorRT .plan with its .plan.json sidecar",
    ),
    ParamSpec(
        "backend",
        "auto",
        "str",
        "Inference backend",
        choices=("auto", "torch", "onnxruntime", "tensorrt", "openvino"),
    ),
    ParamSpec(
        "precision", "fp32", "str", "Inference precision", choices=("fp32", "bf16", "fp16", "int8")
    ),
    ParamSpec("device", "", "str", "Torch device (cpu, cuda, cuda:1); empty: backend's choice"),
    ParamSpec(
        "tensorrt.accept_build_error",
        False,
        "bool",
        "TensorRT: use (and cache) an engine that fails its build check against ONNX Runtime",
    ),
    ParamSpec("cameras", ["front"], "str_list", "Camera names; one input topic each"),
    # 0: the size the checkpoint's model card records (rvm_ros.checkpoint.card).
    ParamSpec("model_height", 0, "int", _SIZE_TEXT.format("height"), (), 0, 4096),
    ParamSpec("model_width", 0, "int", _SIZE_TEXT.format("width"), (), 0, 4096),
    ParamSpec(
        "resize_mode",
        "stretch",
        "str",
        "How images are fitted to the network input",
        choices=("stretch", "letterbox", "center_crop"),
    ),
    ParamSpec(
        "reset_on_gap_s",
        1.0,
        "float",
        "Reset a camera's state when its stamps jump forward by more than this (s)",
        min_value=0.0,
    ),
    ParamSpec(
        "feature_dtype",
        "float16",
        "str",
        "Element type of published features",
        choices=("float16", "float32"),
    ),
    ParamSpec(
        "feature_pool", 1, "int", "Average pooling of the feature grid (1, 2 or 4)", ("1", "2", "4")
    ),
    ParamSpec(
        "max_batch_wait_ms",
        5.0,
        "float",
        "Wait this long for other cameras' frames to batch them into one step (ms)",
        min_value=0.0,
        max_value=1000.0,
    ),
    ParamSpec(
        "max_image_pixels",
        16_777_216,
        "int",
        "Reject input images with more pixels than this",
        min_value=1,
    ),
    ParamSpec("tracking", True, "bool", "Track points and publish ~/<camera>/tracks"),
    ParamSpec(
        "tracking_thread",
        True,
        "bool",
        "Track points on a thread of their own: features go out when the model step ends, "
        "tracks follow (a frame whose camera's tracker is still busy replaces the waiting "
        "one; counted as tracking_dropped, the tracker treats it as a gap)",
    ),
    ParamSpec(
        "track_grid",
        0,
        "int",
        "Start tracking an NxN grid of points on each camera's first frame (0: none)",
        min_value=0,
        max_value=64,
    ),
    ParamSpec(
        "track_corners",
        0,
        "int",
        "Start tracking up to N automatic points on corners of each camera's first frame (0: none)",
        min_value=0,
        max_value=4096,
    ),
    ParamSpec(
        "track_reseed_s",
        1.0,
        "float",
        "Replace automatic points not visible for longer than this with new corners (new "
        "ids; 0: never)",
        min_value=0.0,
        max_value=3600.0,
    ),
    ParamSpec(
        "tracker.method",
        "hybrid",
        "str",
        "Tracker: hybrid (Lucas-Kanade + appearance), klt (Lucas-Kanade only) or "
        "propagation (label propagation on the features)",
        choices=("hybrid", "klt", "propagation"),
    ),
    ParamSpec(
        "tracker.max_side",
        640,
        "int",
        "Tracker (hybrid, klt): track on the grey camera image, area-downscaled to at most "
        "this long side in pixels (0: always full resolution)",
        min_value=0,
        max_value=16384,
    ),
    ParamSpec(
        "tracker.lk_window",
        21,
        "int",
        "Tracker (hybrid, klt): Lucas-Kanade window side in pixels (odd)",
        min_value=5,
        max_value=63,
    ),
    ParamSpec(
        "tracker.lk_levels",
        2,
        "int",
        "Tracker (hybrid, klt): pyramid levels above full resolution",
        min_value=0,
        max_value=6,
    ),
    ParamSpec(
        "tracker.fb_threshold",
        1.0,
        "float",
        "Tracker (hybrid, klt): forward-backward error (tracking-image pixels) that rejects a "
        "Lucas-Kanade step",
        min_value=0.01,
        max_value=100.0,
    ),
    ParamSpec(
        "tracker.template_radius",
        8,
        "int",
        "Tracker (hybrid): half-size in pixels of each point's appearance template",
        min_value=2,
        max_value=16,
    ),
    ParamSpec(
        "tracker.search_radius",
        8.0,
        "float",
        "Tracker (hybrid): search radius in pixels for a hidden or lost point",
        min_value=0.0,
        max_value=64.0,
    ),
    ParamSpec(
        "tracker.feature_weight",
        0.2,
        "float",
        "Tracker (hybrid): weight of the RVM-feature similarity (frame-centred features) in a "
        "point's confidence",
        min_value=0.0,
        max_value=1.0,
    ),
    ParamSpec(
        "tracker.feature_relocalise",
        False,
        "bool",
        "Tracker (hybrid): re-find points by RVM-feature matching over the whole grid when "
        "the motion cannot be estimated from the tracked points",
    ),
    ParamSpec(
        "tracker.n_context",
        20,
        "int",
        "Tracker: recent frames kept as label-propagation context (besides the query frame)",
        min_value=0,
        max_value=200,
    ),
    ParamSpec(
        "tracker.temperature",
        0.7,
        "float",
        "Tracker: softmax temperature on feature cosine similarities",
        min_value=1e-3,
        max_value=100.0,
    ),
    ParamSpec(
        "tracker.topk",
        7,
        "int",
        "Tracker: context cells each cell draws its label from",
        min_value=1,
        max_value=1000,
    ),
    ParamSpec(
        "tracker.radius",
        20.0,
        "float",
        "Tracker: neighbourhood radius in feature cells (0: unrestricted)",
        min_value=0.0,
    ),
    ParamSpec(
        "tracker.visibility_threshold",
        0.6,
        "float",
        "Tracker: confidence at or above which a point is reported visible",
        min_value=0.0,
        max_value=1.0,
    ),
    ParamSpec(
        "tracker.label_sigma",
        0.5,
        "float",
        "Tracker: width (cells) of the Gaussian label drawn around a query point",
        min_value=0.05,
        max_value=16.0,
    ),
    ParamSpec(
        "input_reliability",
        "best_effort",
        "str",
        "QoS reliability of the image subscriptions",
        choices=("best_effort", "reliable"),
    ),
    ParamSpec("input_depth", 1, "int", "QoS history depth of the image subscriptions", (), 1, 1000),
    ParamSpec(
        "raw_subscriptions",
        True,
        "bool",
        "Take images as serialized CDR and view their pixels without copying (false: rclpy's "
        "ordinary deserialisation)",
    ),
    ParamSpec(
        "retain_large_buffers",
        True,
        "bool",
        "Keep freed image-sized buffers in the malloc heap for reuse (process-wide glibc "
        "mallopt) instead of mapping fresh pages for every frame",
    ),
    ParamSpec(
        "opencv_threads",
        1,
        "int",
        "OpenCV worker threads for the node's image work (process-wide cv2.setNumThreads): "
        "1 runs tracking, colour conversion and resizing on the calling thread (per frame "
        "they are too small to gain from a pool, which only adds CPU); 0 leaves OpenCV's "
        "default (one per core)",
        min_value=0,
        max_value=256,
    ),
    ParamSpec(
        "output_reliability",
        "reliable",
        "str",
        "QoS reliability of the feature, track and debug publishers",
        choices=("best_effort", "reliable"),
    ),
    ParamSpec("output_depth", 5, "int", "QoS history depth of the publishers", (), 1, 1000),
    ParamSpec(
        "publish_debug_image",
        True,
        "bool",
        "Publish ~/<camera>/debug_image (only while someone subscribes)",
    ),
    ParamSpec(
        "diagnostics_period_s",
        1.0,
        "float",
        "Period of /diagnostics messages (s)",
        min_value=0.05,
        max_value=3600.0,
    ),
    ParamSpec("autostart", True, "bool", "Configure and activate on start-up"),
    ParamSpec(
        "executor",
        "auto",
        "str",
        "Executor rvm_node spins on: events (rclpy's EventsExecutor, Jazzy and later), "
        "single_threaded, or auto (events where available)",
        ("auto", "events", "single_threaded"),
    ),
    ParamSpec(
        "scene_tokens.enabled",
        False,
        "bool",
        "Publish ~/scene_tokens: every camera's tokens of a step with its geometry",
    ),
    ParamSpec(
        "scene_tokens.base_frame",
        "base_link",
        "str",
        "Scene tokens: frame of camera_to_base and projection (SceneTokens.header.frame_id)",
    ),
    ParamSpec(
        "scene_tokens.sync_policy",
        "partial",
        "str",
        "Scene tokens: partial publishes every step (late cameras invalid); complete only "
        "steps with every camera valid",
        choices=("partial", "complete"),
    ),
    ParamSpec(
        "scene_tokens.tolerance_ms",
        50.0,
        "float",
        "Scene tokens: a camera further than this from the step stamp is out_of_sync (ms)",
        min_value=0.0,
        max_value=10000.0,
    ),
    ParamSpec(
        "scene_tokens.extrinsics",
        "auto",
        "str",
        "Scene tokens: camera-to-base source; auto: cameras.<name>.translation/rotation "
        "where given, else TF (if tf2_ros is installed)",
        choices=("auto", "static", "tf"),
    ),
)

_SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMS}


def camera_param_defaults(camera: str, transport: str = "raw") -> dict[str, str]:
    """Default per-camera parameters (``topic``, ``transport``) of ``camera``."""
    topic = f"/{camera}/image_raw" + ("/compressed" if transport == "compressed" else "")
    return {"topic": topic, "transport": transport}


def unknown_parameters(params: Mapping[str, object]) -> list[str]:
    """Names in ``params`` that the node does not know (typos), sorted."""
    cams = params.get("cameras", _SPECS["cameras"].default)
    cam_names = set(cams) if isinstance(cams, (list, tuple)) else set()
    out = []
    for name in params:
        if name in _SPECS or name == "use_sim_time" or name.startswith("qos_overrides."):
            continue
        parts = name.split(".")
        if (
            len(parts) == 3
            and parts[0] == "cameras"
            and parts[1] in cam_names
            and parts[2] in CAMERA_PARAM_SUFFIXES
        ):
            continue
        out.append(name)
    return sorted(out)
