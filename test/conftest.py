"""Shared test fixtures: paths to the official-implementation golden files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
