"""The node configuration of a replay: parameters file, ``-p`` overrides, cameras from topics."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.replay.settings import DEFAULT_CHECKPOINT, ReplayError, ReplaySettings
from rvm_ros.replay.topics import resolve_topic, topic_cameras

if TYPE_CHECKING:
    from rvm_ros.pipeline.node_config import NodeConfig

log = logging.getLogger(__name__)


def check_overrides(overrides: Mapping[str, object], params: Mapping[str, object]) -> None:
    """Refuse ``-p`` names the node does not know (the node's own rule, one implementation).

    Args:
        overrides: The ``-p NAME=VALUE`` overrides.
        params: Every parameter the replay runs with (gives the camera names).

    Raises:
        ReplayError: An unknown name (a typo, or ``cameras.<camera>.*`` of a camera that
            is not configured); the message lists the cameras there are.
    """
    from rvm_ros.pipeline.params import unknown_parameters

    probe: dict[str, object] = dict.fromkeys(overrides)
    if "cameras" in params:
        probe["cameras"] = params["cameras"]
    unknown = unknown_parameters(probe)
    if not unknown:
        return
    hint = ""
    if any(n.startswith("cameras.") for n in unknown):
        cams = params.get("cameras")
        hint = (
            f"; the cameras are {', '.join(cams)}"
            if isinstance(cams, (list, tuple))
            else "; no camera list is set"
        )
        hint += " (without --config they are named after the bag's image topics)"
    err = ReplayError(
        f"unknown parameter(s) {', '.join(unknown)} (typo? see config/rvm.yaml){hint}",
        cause="unknown_parameter",
    )
    err.exit_code = 2
    raise err


def build_config(
    image_topics: Mapping[str, str], settings: ReplaySettings
) -> tuple[NodeConfig, dict[str, str]]:
    """The node configuration and topic → camera map for a bag's image topics.

    With ``settings.config`` the node's parameters file decides cameras and topics (bag
    image topics no camera subscribes to are ignored and reported); without it, each
    image topic is one camera named after the topic.

    Returns:
        ``(NodeConfig, {topic: camera})``.

    Raises:
        ReplayError: invalid configuration, an unknown ``-p`` name (:func:`check_overrides`),
            or no configured camera topic in the bag.
    """
    from rvm_ros.pipeline.config import ConfigError
    from rvm_ros.pipeline.params import config_from_params, load_params_file

    params: dict[str, object] = {}
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
    if settings.config is not None:
        from rvm_ros.pipeline.params import unknown_parameters

        ignored = unknown_parameters(params)
        if ignored:  # the node warns about the same names in the same file
            log.warning(
                "config %s: ignoring unknown parameter(s): %s (typo? see config/rvm.yaml)",
                settings.config,
                ", ".join(ignored),
            )
    params.update(settings.params)
    check_overrides(settings.params, params)
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
