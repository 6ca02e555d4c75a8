"""Parameters -> frozen NodeConfig, and ROS 2 params files (no rclpy needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rvm_ros.pipeline.config import ConfigError
from rvm_ros.pipeline.params import (
    PARAMS,
    NodeConfig,
    config_from_params,
    load_params_file,
    unknown_parameters,
)

BASE = {"checkpoint": "random:tiny"}


def test_defaults_give_one_front_camera() -> None:
    cfg = config_from_params(BASE)
    assert isinstance(cfg, NodeConfig)
    assert cfg.cameras == ("front",)
    assert cfg.camera_topics == {"front": "/front/image_raw"}
    assert cfg.camera_transports == {"front": "raw"}
    assert cfg.input_reliability == "best_effort"
    assert cfg.autostart is True
    assert cfg.processing.cameras == ("front",)
    assert cfg.processing.feature_dtype == "float16"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.backend = "torch"  # type: ignore[misc]


def test_per_camera_topics_and_transports() -> None:
    cfg = config_from_params(
        {
            **BASE,
            "cameras": ["left", "right"],
            "cameras.left.topic": "/stereo/left/image",
            "cameras.right.transport": "compressed",
        }
    )
    assert cfg.camera_topics == {
        "left": "/stereo/left/image",
        "right": "/right/image_raw/compressed",
    }
    assert cfg.camera_transports == {"left": "raw", "right": "compressed"}
    assert cfg.processing.cameras == ("left", "right")


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"checkpoint": ""}, "checkpoint", "must be set"),
        ({**BASE, "feature_pool": 3}, "feature_pool", "one of 1 | 2 | 4"),
        ({**BASE, "feature_pool": 2.0}, "feature_pool", "expected an integer"),
        ({**BASE, "resize_mode": "fit"}, "resize_mode", "stretch | letterbox | center_crop"),
        ({**BASE, "model_height": 100}, "model_height", "multiple of 16"),
        ({**BASE, "model_width": -16}, "model_width", ">= 0"),
        ({**BASE, "reset_on_gap_s": -1.0}, "reset_on_gap_s", ">= 0"),
        ({**BASE, "reset_on_gap_s": float("nan")}, "reset_on_gap_s", "finite"),
        ({**BASE, "input_reliability": "RELIABLE"}, "input_reliability", "best_effort"),
        ({**BASE, "input_depth": 0}, "input_depth", ">= 1"),
        ({**BASE, "tracking": "yes"}, "tracking", "expected a bool"),
        ({**BASE, "cameras": []}, "cameras", "at least one camera"),
        ({**BASE, "cameras": "front"}, "cameras", "list of strings"),
        ({**BASE, "cameras": ["a", "a"]}, "cameras", "listed twice"),
        ({**BASE, "cameras": ["1st"]}, "cameras", "must start with a letter"),
        (
            {**BASE, "cameras": ["a"], "cameras.a.transport": "theora"},
            "cameras.a.transport",
            "raw | compressed",
        ),
        ({**BASE, "cameras.front.topic": "bad topic"}, "cameras.front.topic", "not a valid"),
        (
            {**BASE, "cameras": ["a", "b"], "cameras.b.topic": "/a/image_raw"},
            "cameras.b.topic",
            "already the topic of camera 'a'",
        ),
        ({**BASE, "backend": "cuda"}, "backend", "auto | torch"),
        ({**BASE, "diagnostics_period_s": 0.0}, "diagnostics_period_s", ">= 0.05"),
    ],
)
def test_invalid_values_name_the_parameter(params: dict, param: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_params(params)
    assert info.value.param == param
    assert words in str(info.value)


def test_ints_are_accepted_for_float_parameters() -> None:
    cfg = config_from_params({**BASE, "reset_on_gap_s": 2, "max_batch_wait_ms": 0})
    assert cfg.processing.reset_on_gap_s == 2.0
    assert isinstance(cfg.processing.max_batch_wait_ms, float)


def test_unknown_parameters_are_listed() -> None:
    params = {
        **BASE,
        "cameras": ["front"],
        "cameras.front.topic": "/x",
        "cameras.frnt.topic": "/y",
        "feature_pooling": 2,
        "use_sim_time": False,
    }
    assert unknown_parameters(params) == ["cameras.frnt.topic", "feature_pooling"]


def test_every_parameter_is_documented_and_its_default_is_valid() -> None:
    names = [p.name for p in PARAMS]
    assert len(names) == len(set(names))
    for p in PARAMS:
        assert p.description, p.name
    cfg = config_from_params({p.name: p.default for p in PARAMS} | BASE)
    assert cfg.checkpoint == "random:tiny"


def test_load_params_file_flattens_and_merges_wildcard(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        """
/**:
  ros__parameters:
    feature_pool: 4
    backend: torch
/robot/rvm:
  ros__parameters:
    checkpoint: random:tiny
    backend: onnxruntime
    cameras: [front, rear]
    cameras.front.topic: /cam0/image
    extra:
      nested: {deep: 1}
other_node:
  ros__parameters:
    checkpoint: nope
"""
    )
    params = load_params_file(f)
    assert params["feature_pool"] == 4
    assert params["backend"] == "onnxruntime"  # the node's own section wins
    assert params["checkpoint"] == "random:tiny"
    assert params["cameras.front.topic"] == "/cam0/image"
    assert params["extra.nested.deep"] == 1
    assert "nope" not in params.values()


def test_load_params_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.yaml"):
        load_params_file(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_params_file(bad)
    other = tmp_path / "other.yaml"
    other.write_text("someone:\n  ros__parameters: {a: 1}\n")
    with pytest.raises(ConfigError, match=r"no section for node 'rvm' \(found: someone\)"):
        load_params_file(other)
    dup = tmp_path / "dup.yaml"
    dup.write_text("rvm:\n  ros__parameters:\n    cameras: [a]\n    cameras: {a: {topic: /x}}\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml is not valid YAML.*duplicate key 'cameras'"):
        load_params_file(dup)
    noparams = tmp_path / "noparams.yaml"
    noparams.write_text("rvm:\n  a: 1\n")
    with pytest.raises(ConfigError, match="has no 'ros__parameters'"):
        load_params_file(noparams)


@pytest.mark.parametrize("name", ["rvm.yaml", "multi_camera.yaml"])
def test_shipped_config_files_are_valid(repo_root: Path, name: str) -> None:
    params = load_params_file(repo_root / "config" / name)
    assert unknown_parameters(params) == []
    cfg = config_from_params({**params, "checkpoint": "random:tiny"})
    if name == "rvm.yaml":
        assert cfg.cameras == ("front",)
    else:
        assert len(cfg.cameras) == 6
        assert len(set(cfg.camera_topics.values())) == 6


def test_tracker_parameters_reach_the_processing_config() -> None:
    from rvm_ros.tracking.config import TrackerConfig

    cfg = config_from_params(
        {"checkpoint": "random:tiny", "tracker.topk": 3, "tracker.radius": 0.0,
         "tracker.temperature": 0.1, "tracker.n_context": 5}
    )  # fmt: skip
    assert cfg.processing.tracker == TrackerConfig(n_context=5, temperature=0.1, topk=3, radius=0.0)
    # Defaults are the evaluation notebook's.
    assert config_from_params({"checkpoint": "random:tiny"}).processing.tracker == TrackerConfig()


@pytest.mark.parametrize(
    ("name", "value"),
    [("tracker.topk", 0), ("tracker.temperature", 0.0), ("tracker.radius", -1.0),
     ("tracker.visibility_threshold", 1.5), ("tracker.n_context", 2.5)],
)  # fmt: skip
def test_invalid_tracker_parameter_is_named(name: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_params({"checkpoint": "random:tiny", name: value})
    assert info.value.param == name


def test_docs_node_md_parameter_table_is_current(repo_root: Path) -> None:
    """docs/NODE.md embeds the generated parameter table; it must match the code."""
    from rvm_ros.pipeline.params import parameters_markdown

    text = (repo_root / "docs" / "NODE.md").read_text()
    start = text.index("-->\n", text.index("<!-- BEGIN PARAMETERS")) + 4
    table = text[start : text.index("<!-- END PARAMETERS -->")]
    assert table == parameters_markdown(), "regenerate the table in docs/NODE.md"
    for spec in PARAMS:
        assert f"`{spec.name}`" in table
