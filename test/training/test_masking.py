"""Masking keeps exactly int(N * 0.05) patches per target, distinct and in range."""

from __future__ import annotations

import numpy as np
import pytest

from rvm_ros.training.config import DataSection
from rvm_ros.training.data import ClipDataset
from rvm_ros.training.masking import num_visible, sample_visible


@pytest.mark.parametrize(("patches", "kept"), [(64, 3), (256, 12), (196, 9), (1024, 51)])
def test_num_visible_is_int_of_five_percent(patches: int, kept: int) -> None:
    assert num_visible(patches) == kept == int(patches * 0.05)


def test_num_visible_keeps_one_on_tiny_grids() -> None:
    assert num_visible(16) == 1


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1])
def test_num_visible_rejects_bad_ratio(bad: float) -> None:
    with pytest.raises(ValueError, match="keep_ratio"):
        num_visible(64, bad)


def test_sample_visible_distinct_sorted() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        idx = sample_visible(rng, 256, 12)
        assert len(np.unique(idx)) == 12
        assert np.all(np.diff(idx) > 0)
        assert idx.min() >= 0 and idx.max() < 256


@pytest.mark.parametrize(("size", "kept"), [(128, 3), (256, 12)])
def test_dataset_targets_keep_exact_count(size: int, kept: int) -> None:
    data = DataSection(procedural=1.0, height=size, width=size, workers=0, max_objects=0)
    dataset = ClipDataset(data, seed=0)
    clip = dataset[3]
    assert clip.visible.shape == (data.target_frames, kept)
    for row in clip.visible:
        assert len(np.unique(row)) == kept
