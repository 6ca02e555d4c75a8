"""Parameter values -> the node's frozen, validated :class:`~rvm_ros.pipeline.config.NodeConfig`.

Values are checked against :data:`rvm_ros.pipeline.params.table.PARAMS` (type, choices,
bounds), then the per-camera topics and transports and the cross-parameter rules
(input size vs. the checkpoint's patch size, ``tracker.*``, ``scene_tokens.*``). Pure
Python (no rclpy), so node and bag replay build the same configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rvm_ros.pipeline.config import CAMERA_NAME, ConfigError, NodeConfig, ProcessingConfig
from rvm_ros.pipeline.params.checks import TOPIC_NAME, check_topic, check_value
from rvm_ros.pipeline.params.scene_tokens import scene_tokens_config
from rvm_ros.pipeline.params.table import PARAMS, TRANSPORTS, camera_param_defaults
from rvm_ros.tracking.config import TrackerConfig

__all__ = ["checkpoint_patch_size", "config_from_params"]


def _cameras(
    params: Mapping[str, object], names: Sequence[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Camera name -> topic and camera name -> transport, checked."""
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
        if not isinstance(topic, str) or not TOPIC_NAME.match(topic):
            raise ConfigError(key, f"not a valid ROS topic name: {topic!r}")
        if topic in topics.values():
            other = next(c for c, t in topics.items() if t == topic)
            raise ConfigError(key, f"topic {topic!r} is already the topic of camera {other!r}")
        topics[cam] = topic
        transports[cam] = transport
    return topics, transports


def _tracker_config(values: Mapping[str, Any]) -> TrackerConfig:  # Any: checked values
    """The ``tracker.*`` parameters as a :class:`TrackerConfig` (errors name the parameter;
    Any: the checked values, see `config_from_params`)."""
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


def _resolve_model_size(
    checkpoint: str, height: int, width: int, warn: Callable[[str], object] | None
) -> tuple[int, int]:
    """``(model_height, model_width)``: 0 becomes the model card's size; both must be
    multiples of the checkpoint's patch size (``ConfigError`` otherwise)."""
    from rvm_ros.checkpoint.card import model_input_size

    patch = checkpoint_patch_size(checkpoint)
    size = model_input_size(checkpoint, height, width, (128, 128), warn)
    for key, value in zip(("model_height", "model_width"), size, strict=True):
        if value % patch:
            raise ConfigError(key, f"must be a multiple of {patch} (the patch size), got {value}")
    return size


def config_from_params(
    params: Mapping[str, object], warn: Callable[[str], object] | None = None
) -> NodeConfig:
    """Validate parameter values and build the frozen :class:`NodeConfig`.

    Args:
        params: Parameter name -> value (dotted names, as
            :func:`~rvm_ros.pipeline.params.load_params_file` gives them or as the
            node declares them). Missing names take their defaults; names the node does
            not know are ignored (see
            :func:`~rvm_ros.pipeline.params.unknown_parameters`).
        warn: Where the warning about a ``model_height`` / ``model_width`` other than the
            checkpoint's training size goes (default: :mod:`logging`); said once.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The first invalid value; ``param`` names it.
    """
    # Any: each value checked against its spec's kind (the fields below take them as such).
    values: dict[str, Any] = {}
    for spec in PARAMS:
        values[spec.name] = check_value(spec, params.get(spec.name, spec.default))
    if not values["checkpoint"]:
        raise ConfigError(
            "checkpoint", "must be set (a .npz / .safetensors path or random:<variant>)"
        )
    values["model_height"], values["model_width"] = _resolve_model_size(
        values["checkpoint"], values["model_height"], values["model_width"], warn
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
        opencv_threads=values["opencv_threads"],
        output_reliability=values["output_reliability"],
        output_depth=values["output_depth"],
        publish_debug_image=values["publish_debug_image"],
        tracking_thread=values["tracking_thread"],
        diagnostics_period_s=values["diagnostics_period_s"],
        autostart=values["autostart"],
        executor=values["executor"],
        tensorrt_accept_build_error=values["tensorrt.accept_build_error"],
        scene_tokens=scene_tokens_config(values, params, cameras, check_topic),
    )
