"""Fixtures of the runtime tests: the official tiny model and its golden outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rvm_ros.checkpoint import load_model
from rvm_ros.model import RVM


@pytest.fixture(scope="session")
def tiny_model(fixtures_dir: Path) -> RVM:
    """The official tiny RVM (random weights made by the official JAX code), float32."""
    return load_model(fixtures_dir / "rvm_tiny_params.npz")


@pytest.fixture(scope="session")
def tiny_io(fixtures_dir: Path) -> dict[str, Any]:
    """Golden inputs and outputs of the official implementation."""
    with np.load(fixtures_dir / "rvm_tiny_io.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder for exported ONNX files shared by the session's tests."""
    return tmp_path_factory.mktemp("rvm_cache")
