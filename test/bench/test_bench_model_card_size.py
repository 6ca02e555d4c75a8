"""rvm-ros bench measures a checkpoint at the input size its model card records, and warns
once, naming both sizes, at another (issue 25). No timing is asserted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from rvm_ros.checkpoint.card import ModelCard
from rvm_ros.checkpoint.random import random_model
from rvm_ros.checkpoint.safetensors import save_safetensors
from rvm_ros.cli import main


def _bench(ckpt: Path, out: Path, *extra: str) -> set[tuple[int, int]]:
    args = ["bench", "--checkpoint", str(ckpt), "--frames", "1", "--warmup", "0"]
    assert main([*args, "--in-process", "--json", str(out), *extra]) == 0
    return {(r["height"], r["width"]) for r in json.loads(out.read_text())["results"]}


def test_bench_follows_the_card_and_warns_once_at_another_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = random_model("tiny", seed=5)
    ckpt = tmp_path / "carded.safetensors"
    save_safetensors(model.state_dict(), model.config, ckpt, card=ModelCard(input_size=(32, 48)))
    caplog.set_level(logging.WARNING, logger="rvm_ros.checkpoint.card")
    assert _bench(ckpt, tmp_path / "card.json") == {(32, 48)}
    assert caplog.records == []
    sizes = ("--height", "64", "--width", "64")
    assert _bench(ckpt, tmp_path / "other.json", *sizes) == {(64, 64)}
    assert len(caplog.records) == 1  # the CLI and run_bench both resolve it; said once
    assert "trained at 32x48" in caplog.text and "runs at 64x64" in caplog.text
