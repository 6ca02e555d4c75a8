"""rvm-ros replay runs a checkpoint at the input size its model card records, and warns
once, naming both sizes, when told to run at another (issue 25)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from replay_helpers import small_settings

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.checkpoint.card import ModelCard
from rvm_ros.checkpoint.random import random_model
from rvm_ros.checkpoint.safetensors import save_safetensors
from rvm_ros.replay.workers import replay

FRAMES = 3


def _grids(out: Path) -> set[tuple[int, int]]:
    with bags.BagReader(out / "features") as reader:
        msgs = [m.msg for m in reader.messages(["/rvm/carphone_pristine/features"])]
    assert len(msgs) == FRAMES
    return {(m.grid_height, m.grid_width) for m in msgs}


def test_replay_follows_the_card_and_warns_once_at_another_size(
    bag_factory: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = random_model("tiny", seed=2)
    ckpt = tmp_path / "carded.safetensors"
    save_safetensors(model.state_dict(), model.config, ckpt, card=ModelCard(input_size=(32, 48)))
    bag = bag_factory("mcap", False, FRAMES)
    caplog.set_level(logging.WARNING, logger="rvm_ros.checkpoint.card")
    settings = small_settings(checkpoint=str(ckpt), params={"model_height": 0, "model_width": 0})
    outcome = replay([bag], tmp_path / "card", settings)
    assert outcome.complete
    assert _grids(tmp_path / "card") == {(2, 3)}  # 32x48 input, 16-pixel patches
    assert [r for r in caplog.records if r.name == "rvm_ros.checkpoint.card"] == []
    for run in ("other1", "other2"):
        outcome = replay([bag], tmp_path / run, small_settings(checkpoint=str(ckpt)))  # 64x64
        assert outcome.complete and _grids(tmp_path / run) == {(4, 4)}
    warned = [r.getMessage() for r in caplog.records if r.name == "rvm_ros.checkpoint.card"]
    assert len(warned) == 1, warned
    assert "trained at 32x48" in warned[0] and "runs at 64x64" in warned[0]
