"""scene_tokens.* and per-camera geometry parameters -> SceneTokensConfig."""

from __future__ import annotations

import numpy as np
import pytest

from rvm_ros.pipeline.params import ConfigError, config_from_params, unknown_parameters

BASE = {"checkpoint": "random:tiny", "cameras": ["front", "rear"], "scene_tokens.enabled": True}


def test_defaults_and_static_pose() -> None:
    cfg = config_from_params(
        BASE | {"cameras.front.translation": [1.5, 0, 1.6], "cameras.front.rotation": [0, 0, 0, 1]}
    ).scene_tokens
    assert cfg.enabled and cfg.base_frame == "base_link" and cfg.sync_policy == "partial"
    assert cfg.camera_info_topics == {"front": "/front/camera_info", "rear": "/rear/camera_info"}
    np.testing.assert_allclose(cfg.static_extrinsics["front"][:3, 3], [1.5, 0, 1.6])
    assert "rear" not in cfg.static_extrinsics
    assert (cfg.extrinsics_source("front"), cfg.extrinsics_source("rear")) == ("static", "tf")
    static = config_from_params(BASE | {"scene_tokens.extrinsics": "static"}).scene_tokens
    assert static.extrinsics_source("rear") == ""  # no source: the camera is no_transform
    assert not config_from_params({"checkpoint": "random:tiny"}).scene_tokens.enabled


def test_per_camera_names_are_known() -> None:
    names = {f"cameras.front.{s}": 0 for s in ("camera_info_topic", "translation", "rotation")}
    assert unknown_parameters(BASE | names) == []


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        (
            {"cameras.front.translation": [1, 2], "cameras.front.rotation": [0, 0, 0, 1]},
            "cameras.front.translation",
            "3 numbers",
        ),
        ({"cameras.front.translation": [1, 2, 3]}, "cameras.front.rotation", "together"),
        (
            {"cameras.front.translation": [1, 2, 3], "cameras.front.rotation": [0, 0, 0, 3]},
            "cameras.front.rotation",
            "unit length",
        ),
        (
            {"cameras.rear.camera_info_topic": "not a topic"},
            "cameras.rear.camera_info_topic",
            "topic",
        ),
        ({"scene_tokens.base_frame": "/map"}, "scene_tokens.base_frame", "leading /"),
        ({"scene_tokens.sync_policy": "all"}, "scene_tokens.sync_policy", "must be one of partial"),
        ({"scene_tokens.tolerance_ms": -1.0}, "scene_tokens.tolerance_ms", ">= 0"),
    ],
)
def test_invalid_values_name_the_parameter(extra: dict, param: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        config_from_params(BASE | extra)
    assert info.value.param == param
