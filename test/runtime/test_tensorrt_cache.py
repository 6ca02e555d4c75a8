"""The TensorRT engine cache: key, paths, pruning of superseded engines."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from rvm_ros.runtime.cache import (
    engine_cache_key,
    engine_cache_path,
    prune_engines,
    timing_cache_path,
    touch_engine,
)

BASE: dict[str, Any] = {
    "onnx_sha256": "ab" * 32,
    "trt_version": "10.9.0",
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "compute_capability": "9.0",
    "precision": "fp16",
    "height": 256,
    "width": 256,
    "max_batch": 8,
    "build_flags": {"workspace_gb": 4.0, "version_compatible": False},
}


def test_cache_key_is_stable_and_short() -> None:
    key = engine_cache_key(**BASE)
    assert key == engine_cache_key(**BASE)
    assert len(key) == 24 and int(key, 16) >= 0
    assert key == engine_cache_key(**BASE, opt_batch=8)  # opt_batch defaults to max_batch


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("onnx_sha256", "cd" * 32),
        ("trt_version", "10.10.0"),
        ("gpu_name", "NVIDIA H200"),
        ("compute_capability", "8.7"),
        ("precision", "bf16"),
        ("precision", "fp32"),
        ("height", 224),
        ("width", 320),
        ("max_batch", 4),
        ("build_flags", {"workspace_gb": 4.0, "version_compatible": True}),
        ("build_flags", {"workspace_gb": 2.0, "version_compatible": False}),
        ("build_flags", None),
    ],
)
def test_cache_key_changes_with_every_field(field: str, value: Any) -> None:
    assert engine_cache_key(**{**BASE, field: value}) != engine_cache_key(**BASE)


def test_cache_key_changes_with_opt_batch() -> None:
    assert engine_cache_key(**BASE, opt_batch=2) != engine_cache_key(**BASE)


def test_cache_key_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'fp16', 'bf16'\]"):
        engine_cache_key(**{**BASE, "precision": "int8"})
    with pytest.raises(ValueError, match=r"need 1 <= opt_batch \(9\) <= max_batch \(8\)"):
        engine_cache_key(**BASE, opt_batch=9)
    with pytest.raises(ValueError, match="max_batch"):
        engine_cache_key(**{**BASE, "max_batch": 0})


def test_paths_name_model_key_version_and_gpu(tmp_path: Path) -> None:
    assert engine_cache_path(tmp_path, "S-random0", "0123abcd") == (
        tmp_path / "engines" / "S-random0-0123abcd.plan"
    )
    assert timing_cache_path(tmp_path, "10.3.0", "8.7") == (
        tmp_path / "engines" / "timing-trt10.3.0-sm8.7.cache"
    )


def _plan(folder: Path, model: str, key: str, age_s: float) -> Path:
    plan = folder / f"{model}-{key}.plan"
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_bytes(b"x")
    plan.with_name(plan.name + ".json").write_text("{}")
    stamp = time.time() - age_s
    os.utime(plan, (stamp, stamp))
    return plan


@pytest.mark.parametrize("keep", [1, 2, 5])
def test_prune_keeps_the_newest_per_model(tmp_path: Path, keep: int) -> None:
    engines = tmp_path / "engines"
    mine = [_plan(engines, "S-abc", f"{i:024x}", age_s=100 * i) for i in range(4)]
    other = _plan(engines, "B-def", "f" * 24, age_s=10_000)
    timing = timing_cache_path(tmp_path, "10.3.0", "8.7")
    timing.write_bytes(b"t")
    removed = prune_engines(tmp_path, "S-abc", keep=keep)
    assert sorted(removed) == sorted(mine[keep:])
    for plan in mine:
        kept = plan in mine[:keep]
        assert plan.exists() is kept
        assert plan.with_name(plan.name + ".json").exists() is kept
    assert other.exists() and timing.exists()


def test_using_an_engine_protects_it_from_pruning(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    old = _plan(engines, "S-abc", "1" * 24, age_s=1000)
    _plan(engines, "S-abc", "2" * 24, age_s=10)
    touch_engine(old)
    prune_engines(tmp_path, "S-abc", keep=1)
    assert old.exists()
    assert not (engines / f"S-abc-{'2' * 24}.plan").exists()


def test_prune_removes_stale_temporaries_only(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    engines.mkdir()
    stale = engines / ".S-abc-1.plan.tmp-123"
    fresh = engines / ".S-abc-2.plan.tmp-456"
    for f in (stale, fresh):
        f.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    prune_engines(tmp_path, "S-abc")
    assert not stale.exists() and fresh.exists()


def test_prune_of_a_missing_cache_and_bad_keep(tmp_path: Path) -> None:
    assert prune_engines(tmp_path / "nothing", "S") == []
    with pytest.raises(ValueError, match="keep"):
        prune_engines(tmp_path, "S", keep=0)
