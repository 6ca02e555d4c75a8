"""The driving stack's token sources from a generated drive: the node tokens are what the
node publishes (the state minus the model's feature centre, when it has one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rvm_ros.bags.make_street import make_street
from rvm_ros.checkpoint import load_model
from rvm_ros.datasets.drive_tokens import extract_drive_tokens
from rvm_ros.street import StreetConfig
from rvm_ros.training.center import with_center


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("drive")
    cfg = StreetConfig(seed=4, duration_s=1.0, cameras=1, width=64, height=64, points=0, cars=1)
    return make_street(root / "d", cfg).bag


def test_node_tokens_follow_the_feature_centre_and_frame_tokens_do_not(drive: Path) -> None:
    torch.set_num_threads(1)
    plain = load_model("random:tiny")
    grid = plain.config.grid(64, 64)
    table = torch.zeros(1 + grid[0] * grid[1], plain.config.dim)
    table[1:, 0] = 5.0  # a constant per cell: pooled, it stays 5 in channel 0
    centred = with_center(plain, table, grid)
    a = extract_drive_tokens(drive, plain, size=(64, 64), max_steps=4)
    b = extract_drive_tokens(drive, centred, size=(64, 64), max_steps=4)
    assert a.tokens["node"].shape == b.tokens["node"].shape and len(a.tokens["node"]) == 4
    np.testing.assert_array_equal(a.tokens["frame"], b.tokens["frame"])
    diff = a.tokens["node"].astype(np.float32) - b.tokens["node"].astype(np.float32)
    np.testing.assert_allclose(diff[..., 0], 5.0, atol=0.02)  # float16 tokens
    np.testing.assert_allclose(diff[..., 1:], 0.0, atol=0.02)
