"""Training configuration: YAML + overrides, validation with the key named, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvm_ros.training import TrainConfigError, load_config


def test_defaults_and_overrides(tmp_path: Path) -> None:
    yaml_path = tmp_path / "t.yaml"
    yaml_path.write_text("steps: 50\noptim:\n  lr: 0.002\ndata:\n  videos: [a.mp4]\n")
    cfg = load_config(yaml_path, ["optim.lr=3e-4", "data.bags=[x,y]", "precision=fp32"])
    assert cfg.steps == 50
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.data.videos == ("a.mp4",)
    assert cfg.data.bags == ("x", "y")
    assert cfg.precision == "fp32"


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["seed=7", "loss.correspondence=0.1", "data.images=[a,b]"])
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("nosuch=1", "nosuch"),
        ("optim.nosuch=1", "optim.nosuch"),
        ("steps=0", "steps"),
        ("steps=abc", "steps"),
        ("data.max_offset=64", "data.min_offset/max_offset"),
        ("precision=fp16", "precision"),
        ("loss.pixel=0", "loss.pixel/patch_norm"),
        ("model=3", "model"),
    ],
)
def test_errors_name_the_key(override: str, key: str) -> None:
    with pytest.raises(TrainConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
