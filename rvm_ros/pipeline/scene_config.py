"""`SceneTokensConfig`: the ``scene_tokens.*`` and per-camera geometry parameters, validated.

Built by `rvm_ros.pipeline.params.config_from_params` (node and replay alike) from:

* ``scene_tokens.enabled | base_frame | sync_policy | tolerance_ms | extrinsics``;
* per camera ``cameras.<name>.camera_info_topic`` (default ``/<name>/camera_info``) and the
  static camera-to-base pose ``cameras.<name>.translation`` ``[x, y, z]`` (metres) with
  ``cameras.<name>.rotation`` ``[x, y, z, w]`` (unit quaternion), given together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rvm_ros.pipeline.config import ConfigError
from rvm_ros.pipeline.geometry import GeometryError, pose_matrix

__all__ = ["EXTRINSICS_SOURCES", "SceneTokensConfig", "scene_tokens_config"]

#: ``auto``: static parameters where a camera has them, else TF; ``static``; ``tf``.
EXTRINSICS_SOURCES: tuple[str, ...] = ("auto", "static", "tf")


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


def _numbers(name: str, value: Any, count: int) -> list[float]:
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == count
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise ConfigError(name, f"expected a list of {count} numbers, got {value!r}")
    return [float(v) for v in value]


def scene_tokens_config(
    values: Mapping[str, Any],
    params: Mapping[str, Any],
    cameras: Sequence[str],
    check_topic: Callable[[str, Any], str],
) -> SceneTokensConfig:
    """Validate the scene-token parameters.

    Args:
        values: The checked ``scene_tokens.*`` values (from the parameter table).
        params: All given parameters (per-camera names are read from here; None = unset).
        cameras: The configured cameras.
        check_topic: ``(param name, value) -> topic``; raises ConfigError when invalid.

    Returns:
        The configuration.

    Raises:
        ConfigError: A bad topic, a pose with a wrong length, non-numbers, a quaternion
            that is not unit length, or only one of translation / rotation.
    """
    base = values["scene_tokens.base_frame"]
    if not isinstance(base, str) or not base.strip() or base.startswith("/"):
        raise ConfigError(
            "scene_tokens.base_frame", f"must be a TF frame id without a leading /, got {base!r}"
        )
    topics: dict[str, str] = {}
    poses: dict[str, np.ndarray] = {}
    for cam in cameras:
        key = f"cameras.{cam}.camera_info_topic"
        value = params.get(key)
        topics[cam] = check_topic(key, f"/{cam}/camera_info" if value is None else value)
        t_key, r_key = f"cameras.{cam}.translation", f"cameras.{cam}.rotation"
        t, r = params.get(t_key), params.get(r_key)
        if t is None and r is None:
            continue
        if t is None or r is None:
            missing = t_key if t is None else r_key
            raise ConfigError(missing, "translation and rotation are given together")
        translation = _numbers(t_key, t, 3)
        rotation = _numbers(r_key, r, 4)
        try:
            poses[cam] = pose_matrix(translation, rotation)
        except GeometryError as exc:
            raise ConfigError(r_key, str(exc)) from exc
    return SceneTokensConfig(
        enabled=bool(values["scene_tokens.enabled"]),
        base_frame=base,
        sync_policy=str(values["scene_tokens.sync_policy"]),
        tolerance_ms=float(values["scene_tokens.tolerance_ms"]),
        extrinsics=str(values["scene_tokens.extrinsics"]),
        camera_info_topics=topics,
        static_extrinsics=poses,
    )
