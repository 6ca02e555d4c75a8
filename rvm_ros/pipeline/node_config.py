"""Parameter values -> the node's frozen, validated :class:`NodeConfig`.

Values are checked against :data:`rvm_ros.pipeline.param_table.PARAMS` (type, choices,
bounds), then the per-camera topics and transports and the cross-parameter rules
(input size vs. the checkpoint's patch size, ``tracker.*``, ``scene_tokens.*``). Pure
Python (no rclpy), so node and bag replay build the same configuration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rvm_ros.pipeline.config import ConfigError, ProcessingConfig
from rvm_ros.pipeline.param_table import PARAMS, TRANSPORTS, ParamSpec, camera_param_defaults
from rvm_ros.pipeline.scene_config import SceneTokensConfig, scene_tokens_config
from rvm_ros.tracking.config import TrackerConfig

__all__ = [
    "CAMERA_NAME",
    "NodeConfig",
    "check_parameter",
    "checkpoint_patch_size",
    "config_from_params",
]

CAMERA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# A ROS 2 topic name (absolute, relative or private), substitutions excluded.
_TOPIC = re.compile(r"^(~/|/)?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


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


def _check_camera_parameter(name: str, suffix: str, value: Any) -> None:
    if suffix == "transport" and (not isinstance(value, str) or value not in TRANSPORTS):
        raise ConfigError(name, f"must be one of {' | '.join(TRANSPORTS)}, got {value!r}")
    if suffix in ("topic", "camera_info_topic"):
        _check_topic(name, value)
    if suffix in ("translation", "rotation") and value is not None:
        n = 3 if suffix == "translation" else 4
        ok = (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and len(value) == n
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
        )
        if not ok:
            raise ConfigError(name, f"expected {n} finite numbers, got {value!r}")


def check_parameter(name: str, value: Any) -> None:
    """Check one parameter value on its own (type, choices, range; camera names, topics).

    The node's parameter callback calls it for every change; cross-parameter rules are
    checked by :func:`config_from_params` at configure time.

    Raises:
        ConfigError: The value is invalid (``param`` names it). Unknown names pass.
    """
    spec = next((p for p in PARAMS if p.name == name), None)
    if spec is not None:
        _check_value(spec, value)
        if name == "cameras":
            for cam in value:
                if not CAMERA_NAME.match(cam):
                    raise ConfigError(
                        name,
                        f"camera name {cam!r} must start with a letter and hold only "
                        "letters, digits, _",
                    )
        return
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "cameras":
        _check_camera_parameter(name, parts[2], value)


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


def config_from_params(
    params: Mapping[str, Any], warn: Callable[[str], object] | None = None
) -> NodeConfig:
    """Validate parameter values and build the frozen :class:`NodeConfig`.

    Args:
        params: Parameter name -> value (dotted names, as
            :func:`~rvm_ros.pipeline.params_file.load_params_file` gives them or as the
            node declares them). Missing names take their defaults; names the node does
            not know are ignored (see
            :func:`~rvm_ros.pipeline.param_table.unknown_parameters`).
        warn: Where the warning about a ``model_height`` / ``model_width`` other than the
            checkpoint's training size goes (default: :mod:`logging`); said once.

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
    from rvm_ros.checkpoint.card import model_input_size

    patch = checkpoint_patch_size(values["checkpoint"])
    values["model_height"], values["model_width"] = model_input_size(  # 0: the model card's
        values["checkpoint"], values["model_height"], values["model_width"], (128, 128), warn
    )
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
