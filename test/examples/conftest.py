"""Load ``examples/planner_tokens.py`` (a script, not a package module) for the tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def planner_tokens(repo_root: Path) -> ModuleType:
    """The example module, imported from its file."""
    path = repo_root / "examples" / "planner_tokens.py"
    spec = importlib.util.spec_from_file_location("planner_tokens_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bench_input_path(repo_root: Path) -> ModuleType:
    """The input-path benchmark example, imported from its file."""
    path = repo_root / "examples" / "bench_input_path.py"
    spec = importlib.util.spec_from_file_location("bench_input_path_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
