"""Fixtures for the model tests: the official tiny checkpoint and its golden outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rvm_ros.checkpoint import load_model
from rvm_ros.model import RVM


@pytest.fixture(scope="session")
def tiny_npz(fixtures_dir: Path) -> Path:
    """The official-format tiny checkpoint."""
    return fixtures_dir / "rvm_tiny_params.npz"


@pytest.fixture(scope="session")
def tiny_io(fixtures_dir: Path) -> dict[str, np.ndarray]:
    """Golden inputs / outputs of the official implementation."""
    with np.load(fixtures_dir / "rvm_tiny_io.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def tiny_model(tiny_npz: Path) -> RVM:
    """The tiny model in float32 (shared: tests must not modify it)."""
    return load_model(tiny_npz)


def stream(model: RVM, video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step ``video [B, T, H, W, 3]`` frame by frame from zero; features and final state."""
    b, t, h, w, _ = video.shape
    state = model.init_state(b, h, w)
    feats = []
    with torch.inference_mode():
        for i in range(t):
            f, state = model.step(torch.from_numpy(video[:, i]), state)
            feats.append(f.float().numpy())
    return np.stack(feats, axis=1), state.float().numpy()
