"""The node's parameter descriptors: every bounded parameter carries its range (issue 27)."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

from rvm_ros.node.parameters import parameter_descriptor
from rvm_ros.pipeline.config import ConfigError
from rvm_ros.pipeline.params import PARAMS, check_parameter


@pytest.mark.parametrize(
    "spec",
    [p for p in PARAMS if p.min_value is not None or p.max_value is not None],
    ids=lambda s: s.name,
)
def test_every_bounded_parameter_has_its_range_in_the_descriptor(spec) -> None:
    desc = parameter_descriptor(spec)
    ranges = desc.integer_range if spec.kind == "int" else desc.floating_point_range
    assert len(ranges) == 1
    if spec.min_value is not None:
        assert ranges[0].from_value == spec.min_value
    if spec.max_value is not None:
        assert ranges[0].to_value == spec.max_value
    assert spec.constraint_text() in desc.description


def test_a_start_value_outside_the_range_drops_the_range_so_configure_reports_it() -> None:
    spec = next(p for p in PARAMS if p.name == "track_grid")
    assert parameter_descriptor(spec, -1).integer_range == []
    assert len(parameter_descriptor(spec, 4).integer_range) == 1


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("model_height", -5, "must be >= 0"),
        ("model_height", "big", "expected an integer"),
        ("feature_pool", 3, "must be one of 1 | 2 | 4"),
        ("tracker.lk_window", -3, "must be >= 5"),
        ("reset_on_gap_s", float("inf"), "must be finite"),
        ("cameras", ["front", "9bad"], "camera name '9bad'"),
        ("cameras.front.transport", "pigeon", "must be one of raw | compressed"),
        ("cameras.front.topic", "not a topic", "not a valid ROS topic name"),
        ("cameras.front.translation", [1.0, 2.0], "expected 3 finite numbers"),
    ],
)
def test_check_parameter_refuses(name: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")) as err:
        check_parameter(name, value)
    assert err.value.param == name


def test_check_parameter_accepts_valid_values() -> None:
    for name, value in [("model_height", 256), ("reset_on_gap_s", 2), ("cameras", ["a", "b"])]:
        check_parameter(name, value)
    check_parameter("cameras.front.rotation", [0.0, 0.0, 0.0, 1.0])
