"""Node parameters: one declaration table, one conversion to a frozen, validated config.

Everything here is pure Python (no rclpy), so off-robot tools (bag replay) read the same
ROS 2 parameter files and get exactly the configuration the node would run with:

>>> params = load_params_file("config/rvm.yaml")  # {"cameras": ["front"], ...}
>>> cfg = config_from_params(params)              # NodeConfig, or raises ConfigError

The node declares every entry of :data:`PARAMS` (plus the per-camera
``cameras.<name>.topic`` / ``cameras.<name>.transport``) and calls
:func:`config_from_params` on the declared values in ``on_configure``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rvm_ros.pipeline.config import ConfigError, ProcessingConfig
from rvm_ros.pipeline.scene_config import SceneTokensConfig, scene_tokens_config
from rvm_ros.tracking.config import TrackerConfig

__all__ = [
    "CAMERA_NAME",
    "CAMERA_PARAM_SUFFIXES",
    "PARAMS",
    "ConfigError",
    "NodeConfig",
    "ParamSpec",
    "camera_param_defaults",
    "config_from_params",
    "load_params_file",
    "unknown_parameters",
]

CAMERA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# A ROS 2 topic name (absolute, relative or private), substitutions excluded.
_TOPIC = re.compile(r"^(~/|/)?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")

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
    default: Any
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
    # 128: the shipped default model's training size (RVM-S and larger: 256).
    ParamSpec("model_height", 128, "int", "Network input height (multiple of 16)", (), 16, 4096),
    ParamSpec("model_width", 128, "int", "Network input width (multiple of 16)", (), 16, 4096),
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
        "tracker.lk_window",
        21,
        "int",
        "Tracker (hybrid, klt): Lucas-Kanade window side in pixels (odd)",
        min_value=5,
        max_value=63,
    ),
    ParamSpec(
        "tracker.lk_levels",
        3,
        "int",
        "Tracker (hybrid, klt): pyramid levels above full resolution",
        min_value=0,
        max_value=6,
    ),
    ParamSpec(
        "tracker.fb_threshold",
        1.0,
        "float",
        "Tracker (hybrid, klt): forward-backward error (network-input pixels) that rejects a "
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
        0.35,
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
        0.5,
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


@dataclass(frozen=True)
class NodeConfig:
    """The node's whole configuration, validated (built only by :func:`config_from_params`).

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
        output_reliability: ``best_effort`` | ``reliable`` (publishers).
        output_depth: History depth of the publishers.
        publish_debug_image: Publish debug images while subscribed.
        tracking_thread: Track points on a thread of their own (`Processor.track`).
        diagnostics_period_s: Period of ``/diagnostics`` (s).
        autostart: Configure and activate on start-up.
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
    output_reliability: str = "reliable"
    output_depth: int = 5
    publish_debug_image: bool = True
    tracking_thread: bool = True
    diagnostics_period_s: float = 1.0
    autostart: bool = True
    tensorrt_accept_build_error: bool = False
    scene_tokens: SceneTokensConfig = field(default_factory=SceneTokensConfig)

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names in configuration order."""
        return tuple(self.camera_topics)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_value(spec: ParamSpec, value: Any) -> Any:
    """Check one value against its spec; returns it normalised (int -> float, list -> tuple)."""
    name = spec.name
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(name, f"expected a bool, got {value!r} ({_type_name(value)})")
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, f"expected an integer, got {value!r} ({_type_name(value)})")
        out: Any = int(value)
    elif spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(name, f"expected a number, got {value!r} ({_type_name(value)})")
        out = float(value)
        if not math.isfinite(out):
            raise ConfigError(name, f"must be finite, got {value!r}")
    elif spec.kind == "str":
        if not isinstance(value, str):
            raise ConfigError(name, f"expected a string, got {value!r} ({_type_name(value)})")
        out = value
    elif spec.kind == "str_list":
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(
                name, f"expected a list of strings, got {value!r} ({_type_name(value)})"
            )
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(name, f"expected a list of strings, got {list(value)!r}")
        return tuple(value)
    else:  # pragma: no cover - table error
        raise AssertionError(f"unknown kind {spec.kind!r} for {name}")
    if spec.choices and str(out) not in spec.choices:
        raise ConfigError(name, f"must be one of {' | '.join(spec.choices)}, got {value!r}")
    if spec.min_value is not None and out < spec.min_value:
        raise ConfigError(name, f"must be >= {spec.min_value:g}, got {value!r}")
    if spec.max_value is not None and out > spec.max_value:
        raise ConfigError(name, f"must be <= {spec.max_value:g}, got {value!r}")
    return out


def _cameras(params: Mapping[str, Any], names: Sequence[str]) -> tuple[dict[str, str], ...]:
    if not names:
        raise ConfigError("cameras", "at least one camera is needed")
    seen: set[str] = set()
    for cam in names:
        if not CAMERA_NAME.match(cam):
            raise ConfigError(
                "cameras",
                f"camera name {cam!r} must start with a letter and hold only letters, digits, _",
            )
        if cam in seen:
            raise ConfigError("cameras", f"camera {cam!r} is listed twice")
        seen.add(cam)
    topics: dict[str, str] = {}
    transports: dict[str, str] = {}
    for cam in names:
        tkey = f"cameras.{cam}.transport"
        transport = params.get(tkey, "raw")
        if not isinstance(transport, str) or transport not in TRANSPORTS:
            raise ConfigError(tkey, f"must be one of {' | '.join(TRANSPORTS)}, got {transport!r}")
        key = f"cameras.{cam}.topic"
        topic = params.get(key, camera_param_defaults(cam, transport)["topic"])
        if not isinstance(topic, str) or not _TOPIC.match(topic):
            raise ConfigError(key, f"not a valid ROS topic name: {topic!r}")
        if topic in topics.values():
            other = next(c for c, t in topics.items() if t == topic)
            raise ConfigError(key, f"topic {topic!r} is already the topic of camera {other!r}")
        topics[cam] = topic
        transports[cam] = transport
    return topics, transports


def _check_topic(key: str, topic: Any) -> str:
    if not isinstance(topic, str) or not _TOPIC.match(topic):
        raise ConfigError(key, f"not a valid ROS topic name: {topic!r}")
    return topic


def unknown_parameters(params: Mapping[str, Any]) -> list[str]:
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


def _tracker_config(values: Mapping[str, Any]) -> TrackerConfig:
    """The ``tracker.*`` parameters as a :class:`TrackerConfig` (errors name the parameter)."""
    kwargs = {name.split(".", 1)[1]: values[name] for name in values if name.startswith("tracker.")}
    try:
        return TrackerConfig(**kwargs)
    except ValueError as exc:
        # TrackerConfig messages start with "TrackerConfig.<field> ..."; name the parameter.
        text = str(exc)
        field_name = next((k for k in kwargs if f"TrackerConfig.{k} " in text), "")
        raise ConfigError(f"tracker.{field_name}" if field_name else "tracker", text) from exc


def checkpoint_patch_size(checkpoint: str) -> int:
    """Patch size of the checkpoint's architecture (its config, read without loading it).

    A checkpoint that cannot be read here gets the model config's default patch size; its
    own error is raised when the runtime loads it.
    """
    from rvm_ros.checkpoint.load import read_config
    from rvm_ros.model.config import DEFAULT_PATCH_SIZE

    try:
        return read_config(checkpoint).patch_size
    except (OSError, ValueError):
        return DEFAULT_PATCH_SIZE


def config_from_params(params: Mapping[str, Any]) -> NodeConfig:
    """Validate parameter values and build the frozen :class:`NodeConfig`.

    Args:
        params: Parameter name -> value (dotted names, as :func:`load_params_file` gives
            them or as the node declares them). Missing names take their defaults; names
            the node does not know are ignored (see :func:`unknown_parameters`).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The first invalid value; ``param`` names it.
    """
    values: dict[str, Any] = {}
    for spec in PARAMS:
        values[spec.name] = _check_value(spec, params.get(spec.name, spec.default))
    if not values["checkpoint"]:
        raise ConfigError(
            "checkpoint", "must be set (a .npz / .safetensors path or random:<variant>)"
        )
    patch = checkpoint_patch_size(values["checkpoint"])
    for key in ("model_height", "model_width"):
        if values[key] % patch:
            raise ConfigError(
                key, f"must be a multiple of {patch} (the patch size), got {values[key]}"
            )
    cameras: tuple[str, ...] = values["cameras"]
    topics, transports = _cameras(params, cameras)
    tracker = _tracker_config(values)
    processing = ProcessingConfig(
        cameras=cameras,
        model_height=values["model_height"],
        model_width=values["model_width"],
        resize_mode=values["resize_mode"],
        reset_on_gap_s=values["reset_on_gap_s"],
        feature_dtype=values["feature_dtype"],
        feature_pool=values["feature_pool"],
        max_batch_wait_ms=values["max_batch_wait_ms"],
        max_image_pixels=values["max_image_pixels"],
        tracking=values["tracking"],
        track_grid=values["track_grid"],
        track_corners=values["track_corners"],
        track_reseed_s=values["track_reseed_s"],
        tracker=tracker,
    )
    return NodeConfig(
        processing=processing,
        checkpoint=values["checkpoint"],
        backend=values["backend"],
        precision=values["precision"],
        device=values["device"],
        camera_topics=topics,
        camera_transports=transports,
        input_reliability=values["input_reliability"],
        input_depth=values["input_depth"],
        raw_subscriptions=values["raw_subscriptions"],
        retain_large_buffers=values["retain_large_buffers"],
        output_reliability=values["output_reliability"],
        output_depth=values["output_depth"],
        publish_debug_image=values["publish_debug_image"],
        tracking_thread=values["tracking_thread"],
        diagnostics_period_s=values["diagnostics_period_s"],
        autostart=values["autostart"],
        tensorrt_accept_build_error=values["tensorrt.accept_build_error"],
        scene_tokens=scene_tokens_config(values, params, cameras, _check_topic),
    )


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value


def _matches_node(key: str, node_name: str) -> bool:
    """Whether a params-file top-level key applies to ``node_name`` (namespace ignored)."""
    key = key.strip()
    if key in ("/**", "**"):
        return True
    return key.rstrip("/").split("/")[-1] == node_name


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML would silently keep the last one)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def load_params_file(path: str | Path, node_name: str = "rvm") -> dict[str, Any]:
    """Read a ROS 2 parameters YAML file for one node, flattened to dotted names.

    The file holds ``<node>: {ros__parameters: {...}}`` sections; ``/**`` (any node) and
    keys ending in ``/<node_name>`` (any namespace) apply. Wildcard sections are applied
    first, so a section naming the node wins. Nested mappings become dotted names
    (``camera: {front: {topic: x}}`` -> ``camera.front.topic``); per-camera parameters are
    best written as dotted keys (``cameras.front.topic: x``) because a nested ``cameras:``
    mapping would collide with the ``cameras`` list (duplicate keys are refused).

    Args:
        path: The YAML file.
        node_name: The node's name (``rvm`` by default).

    Returns:
        Parameter name -> value.

    Raises:
        ConfigError: Unreadable file, malformed YAML or no section for the node; ``param``
            is ``params_file`` and the message names the file.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError("params_file", f"cannot read {p}: {exc.strerror or exc}") from exc
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError("params_file", f"{p} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError("params_file", f"{p}: expected a mapping of node names at the top")
    wild = [k for k in doc if str(k).strip() in ("/**", "**")]
    named = [k for k in doc if k not in wild and _matches_node(str(k), node_name)]
    if not wild and not named:
        raise ConfigError(
            "params_file",
            f"{p} has no section for node {node_name!r} (found: {', '.join(map(str, doc))})",
        )
    out: dict[str, Any] = {}
    for key in wild + named:
        section = doc[key]
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ConfigError("params_file", f"{p}: section {key!r} has no 'ros__parameters'")
        body = section["ros__parameters"]
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError("params_file", f"{p}: {key}.ros__parameters is not a mapping")
        _flatten("", body, out)
    return out


def parameters_markdown() -> str:
    """The parameter reference as a markdown table (docs/NODE.md embeds it verbatim).

    Returns:
        One row per entry of :data:`PARAMS` plus the per-camera parameters.
    """

    def show(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(map(str, value)) + "]"
        return '""' if value == "" else str(value)

    rows = ["| parameter | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for spec in PARAMS:
        rows.append(
            f"| `{spec.name}` | {spec.kind} | `{show(spec.default)}` | "
            f"{spec.constraint_text().replace(' | ', ', ') or 'any'} | {spec.description} |"
        )
    rows.append(
        "| `cameras.<name>.topic` | str | `/<name>/image_raw` (`.../compressed` for "
        "compressed) | a ROS topic name | Input image topic of camera `<name>` |"
    )
    rows.append(
        "| `cameras.<name>.transport` | str | `raw` | one of "
        f"{', '.join(TRANSPORTS)} | `sensor_msgs/Image` (raw) or `CompressedImage` |"
    )
    rows.append(
        "| `cameras.<name>.camera_info_topic` | str | `/<name>/camera_info` | a ROS topic "
        "name | Scene tokens: `sensor_msgs/CameraInfo` of camera `<name>` |"
    )
    rows.append(
        "| `cameras.<name>.translation` | float list | unset | 3 numbers (m) | Scene tokens: "
        "static camera-to-base translation `[x, y, z]` of the camera frame in the base frame |"
    )
    rows.append(
        "| `cameras.<name>.rotation` | float list | unset | unit quaternion | Scene tokens: "
        "static camera-to-base rotation `[x, y, z, w]` (with `translation`) |"
    )
    return "\n".join(rows) + "\n"
