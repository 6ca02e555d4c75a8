"""TensorRT backend: the engine cache key (pure), and the engine itself where it can run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rvm_ros.model import RVM
from rvm_ros.runtime import BackendUnavailable, create_encoder, encode_video
from rvm_ros.runtime.backends.tensorrt import (
    engine_cache_key,
    engine_cache_path,
    tensorrt_available,
)

BASE: dict[str, Any] = {
    "onnx_sha256": "ab" * 32,
    "trt_version": "10.9.0",
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "precision": "fp16",
    "height": 256,
    "width": 256,
    "max_batch": 8,
}


def test_cache_key_is_stable_and_short() -> None:
    key = engine_cache_key(**BASE)
    assert key == engine_cache_key(**BASE)
    assert len(key) == 24 and int(key, 16) >= 0
    # opt_batch defaults to max_batch
    assert key == engine_cache_key(**BASE, opt_batch=8)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("onnx_sha256", "cd" * 32),
        ("trt_version", "10.10.0"),
        ("gpu_name", "NVIDIA H200"),
        ("precision", "bf16"),
        ("precision", "fp32"),
        ("height", 224),
        ("width", 320),
        ("max_batch", 4),
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


def test_cache_path_names_model_and_key(tmp_path: Path) -> None:
    path = engine_cache_path(tmp_path, "S-random0", "0123abcd")
    assert path == tmp_path / "engines" / "S-random0-0123abcd.plan"


def test_unavailable_tensorrt_is_reported(tiny_model: RVM, tmp_path: Path) -> None:
    ok, why = tensorrt_available()
    if ok:
        pytest.skip(f"TensorRT runs here ({why})")
    assert why.startswith(("tensorrt cannot be imported", "tensorrt is installed but"))
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        create_encoder(tiny_model, backend="tensorrt", cache_dir=tmp_path)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_reproduces_official_stream(
    tiny_model: RVM, tiny_io: dict[str, Any], tmp_path: Path, precision: str
) -> None:  # pragma: no cover - needs TensorRT and a GPU
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (cannot be obtained here)")
    ok, why = tensorrt_available()
    if not ok:
        pytest.skip(why)
    enc = create_encoder(
        tiny_model, backend="tensorrt", precision=precision, max_batch=4, cache_dir=tmp_path
    )
    assert enc.build_check_error is not None  # type: ignore[attr-defined]
    feats = encode_video(enc, tiny_io["stream_video"])
    tol = 1e-4 if precision == "fp32" else 3e-2
    assert np.abs(feats - tiny_io["stream_features"]).max() <= tol
    plans = list((tmp_path / "engines").glob("*.plan"))
    assert len(plans) == 1
    stamp = plans[0].stat().st_mtime_ns
    again = create_encoder(
        tiny_model, backend="tensorrt", precision=precision, max_batch=4, cache_dir=tmp_path
    )
    assert again.build_check_error is None  # type: ignore[attr-defined]  # cached: no build
    assert plans[0].stat().st_mtime_ns == stamp
