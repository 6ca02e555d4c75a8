"""Resume after a crash while saving, damaged run files, non-finite training, an existing
folder, unchecked fields (issue 27)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rvm_ros.training import TrainConfigError, TrainError, train

from .conftest import small_config

EXTRA = ("steps=6", "checkpoint_every=2", "keep_checkpoints=3")


def _losses(cfg, stop_at=None):  # type: ignore[no-untyped-def]
    seen: dict[int, float] = {}
    train(cfg, on_step=lambda s, v: seen.__setitem__(s, v["loss"]), stop_at=stop_at)
    return seen


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[int, float], Path]:
    """An uninterrupted run: the losses and weights every resume must reproduce."""
    out = tmp_path_factory.mktemp("straight")
    return _losses(small_config(out, *EXTRA)), out / "last.safetensors"


def _half_saved(run: Path) -> None:
    """Killed between the two ``last.*`` replacements of step 4: new weights, old state."""
    shutil.copy(run / "step_0000002.state.pt", run / "last.state.pt")


def _truncated_state(run: Path) -> None:
    data = (run / "last.state.pt").read_bytes()
    (run / "last.state.pt").write_bytes(data[: len(data) // 3])


def _damaged_weights(run: Path) -> None:
    data = bytearray((run / "last.safetensors").read_bytes())
    data[-64:] = bytes(64)  # zeroed tail: still a readable file, other weights
    (run / "last.safetensors").write_bytes(bytes(data))


def _damaged_last_and_metrics(run: Path) -> None:
    _truncated_state(run)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "loss": 0.3')  # half-written line of a crash


@pytest.mark.parametrize(
    "damage", [_half_saved, _truncated_state, _damaged_weights, _damaged_last_and_metrics]
)
def test_resume_takes_the_newest_intact_pair_and_is_exact(
    tmp_path: Path, straight: tuple[dict[int, float], Path], damage
) -> None:
    losses, weights = straight
    run = tmp_path / "run"
    _losses(small_config(run, *EXTRA), stop_at=4)
    damage(run)
    resumed = _losses(small_config(run, *EXTRA))
    # Steps 3-4 are not applied twice: the resume starts at 4 from step_0000004.
    assert sorted(resumed) == [5, 6]
    assert resumed[5] == losses[5] and resumed[6] == losses[6]
    a, b = load_file(weights), load_file(run / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_no_intact_checkpoint_is_one_error(tmp_path: Path) -> None:
    from rvm_ros.training.resume import DamagedRun

    run = tmp_path / "run"
    train(small_config(run, "steps=2", "checkpoint_every=2", "keep_checkpoints=1"))
    for p in run.glob("*.state.pt"):
        p.write_bytes(b"garbage")
    with pytest.raises(DamagedRun, match="no intact checkpoint to resume from") as err:
        train(small_config(run, "steps=2", "checkpoint_every=2", "keep_checkpoints=1"))
    assert err.value.cause == "damaged_run"


def test_non_finite_training_stops_and_keeps_the_good_checkpoints(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = small_config(run, "steps=4", "checkpoint_every=1", "keep_checkpoints=1")
    train(cfg, stop_at=1)
    good = {p.name: p.read_bytes() for p in run.glob("*.s*")}
    huge = small_config(tmp_path / "huge", "steps=4", "checkpoint_every=1", "optim.lr=1e30")
    with pytest.raises(TrainError, match="non-finite") as err:
        train(huge)
    assert err.value.cause == "non_finite"
    for p in (tmp_path / "huge").glob("*.safetensors"):  # nothing non-finite was saved
        assert all(bool(torch.isfinite(t).all()) for t in load_file(p).values())
    assert {p.name: p.read_bytes() for p in run.glob("*.s*")} == good


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=.inf", "optim.lr: must be finite"),
        ("optim.lr=nan", "optim.lr: must be finite"),
        ("optim.beta1=2", "optim.beta1: must be in [0, 1)"),
        ("optim.weight_decay=-1", "optim.weight_decay: must be >= 0"),
        ("keep_checkpoints=-1", "keep_checkpoints: must be >= 1"),
        ("data.max_objects=-2", "data.max_objects: must be >= 0"),
        ("data.max_speed=nan", "data.max_speed: must be finite"),
        ("data.object_speed=-1", "data.object_speed: must be >= 0"),
        ("batch_size=10000000", "batch_size: 10000000 is more than the 1048576 allowed"),
        ("data.height=1048576", "data.height: 1048576 is more than the 4096 allowed"),
        ("data.source_frames=100000", "data.source_frames: 100000 is more than the 64"),
        ("batch_size=100000", "batch_size (clips per micro-batch): 100000 would need about"),
    ],
)
def test_unchecked_fields_are_refused(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(TrainConfigError) as err:
        small_config(tmp_path, override)
    assert message in str(err.value)


def test_an_existing_folder_is_not_overwritten_without_force(tmp_path: Path) -> None:
    run = tmp_path / "mine"
    run.mkdir()
    (run / "config.yaml").write_text("my notes\n")
    (run / "metrics.jsonl").write_text("my data\n")
    from rvm_ros.fsutil import OutputError

    with pytest.raises(OutputError, match="exists and holds no run to resume; pass --force"):
        train(small_config(run, "steps=1"))  # type: ignore[call-arg]
    assert (run / "config.yaml").read_text() == "my notes\n"
    assert (run / "metrics.jsonl").read_text() == "my data\n"
    assert train(small_config(run, "steps=1"), force=True).step == 1


def test_a_stalled_loader_worker_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung data worker stopped training silently forever; now it is a `stalled` error."""
    import time

    from rvm_ros.training import data

    real = data.ClipDataset.__getitem__

    def hang_after_two(self, index):  # type: ignore[no-untyped-def]
        if isinstance(index, int) and index >= 2:
            time.sleep(60)
        return real(self, index)

    monkeypatch.setattr(data, "LOADER_TIMEOUT_S", 3.0)
    monkeypatch.setattr(data.ClipDataset, "__getitem__", hang_after_two)
    cfg = small_config(tmp_path / "run", "steps=4", "data.workers=1", "batch_size=1")
    with pytest.raises(TrainError, match="the data loader stalled") as err:
        train(cfg)
    assert err.value.cause == "stalled"
