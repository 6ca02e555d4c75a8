"""Shared helpers of the training tests: small configurations and a short synthetic video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rvm_ros.training import TrainConfig, load_config

# A small model and clip: seconds per test on 2 CPU cores.
SMALL = (
    "model.dim=32",
    "model.enc_layers=1",
    "model.enc_heads=2",
    "model.core_layers=1",
    "model.core_heads=2",
    "model.dec_dim=32",
    "model.dec_layers=1",
    "model.dec_heads=2",
    "data.height=64",
    "data.width=64",
    "data.source_frames=2",
    "data.target_frames=2",
    "data.max_offset=12",
    "data.procedural=1",
    "data.workers=0",
    "batch_size=4",
    "log_every=1",
    "progress=false",
    "threads=1",
    "optim.warmup_steps=2",
)


def small_config(out_dir: Path, *overrides: str) -> TrainConfig:
    """The small test configuration writing to ``out_dir`` (extra overrides win)."""
    return load_config(None, [*SMALL, f"out_dir={out_dir}", *overrides])


@pytest.fixture(scope="session")
def moving_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-frame 96x80 MJPG video of a textured square drifting right, with a hard cut."""
    path = tmp_path_factory.mktemp("video") / "drift.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 80))
    rng = np.random.default_rng(0)
    noise = rng.random((80, 200, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 4.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    texture = (smooth * 255).astype(np.uint8)
    other = 255 - texture  # a different scene after the cut
    for i in range(40):
        src = texture if i < 30 else other  # hard cut at frame 30
        writer.write(np.ascontiguousarray(src[:, i : i + 96]))
    writer.release()
    return path
