"""The training loop: exact resume, determinism, outputs loadable by every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rvm_ros.checkpoint import load_model
from rvm_ros.training import TrainError, train
from rvm_ros.training.optim import lr_factor

from .conftest import small_config


def _losses(cfg, stop_at=None):  # type: ignore[no-untyped-def]
    seen: dict[int, float] = {}
    train(cfg, on_step=lambda s, v: seen.__setitem__(s, v["loss"]), stop_at=stop_at)
    return seen


def test_resume_reproduces_the_next_steps_exactly(tmp_path: Path) -> None:
    extra = ("steps=4", "checkpoint_every=2", "loss.correspondence=0.1", "loss.patch_norm=0.1")
    straight = _losses(small_config(tmp_path / "a", *extra))
    first = _losses(small_config(tmp_path / "b", *extra), stop_at=2)
    assert sorted(first) == [1, 2]
    resumed = _losses(small_config(tmp_path / "b", *extra))
    assert sorted(resumed) == [3, 4]
    for step in (1, 2):
        assert first[step] == straight[step]
    for step in (3, 4):
        assert resumed[step] == straight[step]  # bit-exact, not approximately
    a, b = (
        load_file(tmp_path / "a" / "last.safetensors"),
        load_file(tmp_path / "b" / "last.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4]


def test_outputs_and_checkpoint_load(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, "steps=2", "checkpoint_every=1", "keep_checkpoints=1")
    result = train(cfg)
    assert result.step == 2
    for name in ("config.yaml", "metrics.jsonl", "loss.png", "last.safetensors", "last.state.pt"):
        assert (tmp_path / name).is_file(), name
    assert sorted(p.name for p in tmp_path.glob("step_*.safetensors")) == [
        "step_0000002.safetensors"
    ]
    model = load_model(result.checkpoint)
    assert model.decoder is not None and model.config.dim == 32


def test_resume_with_other_config_is_refused(tmp_path: Path) -> None:
    train(small_config(tmp_path, "steps=1"))
    with pytest.raises(TrainError, match="another configuration"):
        train(small_config(tmp_path, "steps=1", "optim.lr=0.1"))


def test_fine_tune_from_checkpoint(tmp_path: Path) -> None:
    first = train(small_config(tmp_path / "a", "steps=1"))
    tuned = train(small_config(tmp_path / "b", "steps=1", f"init={first.checkpoint}"))
    assert load_model(tuned.checkpoint).config == load_model(first.checkpoint).config


@pytest.mark.parametrize(("step", "expected"), [(0, 0.25), (3, 1.0), (99, 0.1)])
def test_schedule_warmup_then_cosine(step: int, expected: float) -> None:
    assert lr_factor(step, 100, 4, 0.1) == pytest.approx(expected)


def test_length_may_change_during_warmup_only(tmp_path: Path) -> None:
    extra = ("checkpoint_every=2", "optim.warmup_steps=2")
    straight = _losses(small_config(tmp_path / "a", "steps=4", *extra))
    _losses(small_config(tmp_path / "b", "steps=9", *extra), stop_at=2)
    resumed = _losses(small_config(tmp_path / "b", "steps=4", *extra))
    assert resumed[3] == straight[3] and resumed[4] == straight[4]
    with pytest.raises(TrainError, match="warm-up"):
        train(small_config(tmp_path / "b", "steps=6", *extra))
