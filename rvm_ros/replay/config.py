"""The node configuration of a replay: parameters file, ``-p`` overrides, cameras from topics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.replay.settings import DEFAULT_CHECKPOINT, ReplayError, ReplaySettings
from rvm_ros.replay.topics import resolve_topic, topic_cameras


def build_config(
    image_topics: Mapping[str, str], settings: ReplaySettings
) -> tuple[Any, dict[str, str]]:
    """The node configuration and topic → camera map for a bag's image topics.

    With ``settings.config`` the node's parameters file decides cameras and topics (bag
    image topics no camera subscribes to are ignored and reported); without it, each
    image topic is one camera named after the topic.

    Returns:
        ``(NodeConfig, {topic: camera})``.

    Raises:
        ReplayError: invalid configuration, or no configured camera topic in the bag.
    """
    from rvm_ros.pipeline.config import ConfigError
    from rvm_ros.pipeline.params import config_from_params, load_params_file

    params: dict[str, Any] = {}
    try:
        if settings.config is not None:
            params.update(load_params_file(settings.config, settings.node_name))
    except ConfigError as exc:
        raise ReplayError(f"config {settings.config}: {exc}") from exc
    if settings.config is None:
        mapping = topic_cameras(sorted(image_topics))
        params["cameras"] = [mapping[t] for t in sorted(image_topics)]
        for topic, cam in mapping.items():
            params[f"cameras.{cam}.topic"] = topic
            compressed = image_topics[topic] == bags.COMPRESSED_IMAGE_TYPE
            params[f"cameras.{cam}.transport"] = "compressed" if compressed else "raw"
    params.update(settings.params)
    for key, value in (
        ("checkpoint", settings.checkpoint),
        ("backend", settings.backend),
        ("precision", settings.precision),
        ("device", settings.device),
    ):
        if value is not None:
            params[key] = value
    params.setdefault("checkpoint", DEFAULT_CHECKPOINT)
    if not params["checkpoint"]:
        params["checkpoint"] = DEFAULT_CHECKPOINT
    where = f"config {settings.config}" if settings.config else "replay settings"
    try:
        cfg = config_from_params(params)
    except ConfigError as exc:
        raise ReplayError(f"{where}: {exc}") from exc
    resolved = {c: resolve_topic(t, settings.node_name) for c, t in cfg.camera_topics.items()}
    topic_to_camera = {t: c for c, t in resolved.items() if t in image_topics}
    if not topic_to_camera:
        raise ReplayError(
            f"none of the configured camera topics ({', '.join(resolved.values())}) "
            f"is an image topic of the bag (image topics: "
            f"{', '.join(image_topics) or 'none'}); map a camera to a bag topic with "
            f"-p cameras.<camera>.topic=<topic>"
        )
    return cfg, topic_to_camera
