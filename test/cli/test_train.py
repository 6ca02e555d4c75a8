"""`rvm-ros train` end to end on the tiny model, and `rvm-ros eval-reconstruction` on its output."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rvm_ros.checkpoint import load_model
from rvm_ros.cli import main

TINY = [
    "model.variant=tiny",
    "data.procedural=1",
    "data.height=64",
    "data.width=64",
    "data.source_frames=2",
    "data.target_frames=2",
    "data.max_offset=12",
    "data.workers=0",
    "batch_size=2",
    "steps=2",
    "threads=1",
    "progress=false",
]


def test_train_then_eval_reconstruction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("seed: 1\nlog_every: 1\nloss:\n  patch_norm: 0.1\n")
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), *TINY, "--out-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "step 2/2" in out
    resolved = (run / "config.yaml").read_text()
    assert "seed: 1" in resolved and "patch_norm: 0.1" in resolved
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert load_model(run / "last.safetensors").config.variant == "tiny"

    video = tmp_path / "held_out.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 96))
    texture = cv2.GaussianBlur(np.random.default_rng(0).random((96, 200, 3)), (0, 0), 3)
    texture = (255 * (texture - texture.min()) / np.ptp(texture)).astype(np.uint8)
    for i in range(60):
        writer.write(np.ascontiguousarray(texture[:, i : i + 96]))
    writer.release()
    args = ["--checkpoint", str(run / "last.safetensors"), "--data", str(video), "--clips", "2"]
    rc = main(["eval-reconstruction", *args, "--height", "64", "--width", "64",
               "--out", str(tmp_path / "eval"), "--correspondence", "--shift", "5"])  # fmt: skip
    assert rc == 0
    report = json.loads((tmp_path / "eval" / "reconstruction.json").read_text())
    overall = report["overall"]
    assert overall["targets"] > 0
    for key in ("model_mse", "mean_colour_mse", "copy_last_mse"):
        assert 0 < overall[key] < 1, key
    assert sum(b["targets"] for b in report["buckets"]) == overall["targets"]
    assert set(report["correspondence"]["top1"][str(video)]) == {
        "model", "random", "training-init", "pixels"
    }  # fmt: skip
    assert (tmp_path / "eval" / "reconstruction.png").stat().st_size > 1000


def test_train_bad_override_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "optim.nosuch=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rvm-ros: error: unknown key(s) optim.nosuch") and "Traceback" not in err


def test_train_refuses_a_run_folder_inside_an_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    still = images / "still.png"
    cv2.imwrite(str(still), np.full((64, 64, 3), 128, np.uint8))
    before = still.read_bytes()
    run = images / "run"
    rc = main(["train", *TINY, f"data.images=[{images}]", "--out-dir", str(run)])
    assert rc == 2  # a usage error: choose another out_dir
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lies inside the input" in err, err
    assert not run.exists()
    assert still.read_bytes() == before


def test_options_may_stand_between_overrides() -> None:
    """Issue 27: ``train K=V --stop-at N K=V`` was rejected."""
    from rvm_ros.cli import build_parser

    args = build_parser().parse_args(
        ["train", "steps=3", "--stop-at", "2", "optim.lr=0.1", "--out-dir", "x"]
    )
    assert args.overrides == ["steps=3", "optim.lr=0.1"]
    assert (args.stop_at, args.out_dir) == (2, "x")
