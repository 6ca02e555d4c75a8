"""The ``scene_tokens.*`` and per-camera geometry parameters -> `SceneTokensConfig`.

Built by `rvm_ros.pipeline.params.config_from_params` (node and replay alike) from:

* ``scene_tokens.enabled | base_frame | sync_policy | tolerance_ms | extrinsics``;
* per camera ``cameras.<name>.camera_info_topic`` (default ``/<name>/camera_info``) and the
  static camera-to-base pose ``cameras.<name>.translation`` ``[x, y, z]`` (metres) with
  ``cameras.<name>.rotation`` ``[x, y, z, w]`` (unit quaternion), given together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rvm_ros.pipeline.config import ConfigError, SceneTokensConfig
from rvm_ros.pipeline.geometry import GeometryError, pose_matrix

__all__ = ["scene_tokens_config"]


def _numbers(name: str, value: object, count: int) -> list[float]:
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == count:
        numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == count:
            return [float(v) for v in numbers]
    raise ConfigError(name, f"expected a list of {count} numbers, got {value!r}")


def scene_tokens_config(
    values: Mapping[str, Any],  # Any: checked against the table (see config_from_params)
    params: Mapping[str, object],
    cameras: Sequence[str],
    check_topic: Callable[[str, object], str],
) -> SceneTokensConfig:
    """Validate the scene-token parameters.

    Args:
        values: The checked ``scene_tokens.*`` values (from the parameter table; Any: each
            checked against its kind).
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
