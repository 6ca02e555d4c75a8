"""The shipped default checkpoint: resolves by name, loads, exports to ONNX, runs on every
CPU backend with the same features as torch eager."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvm_ros.checkpoint import CheckpointError, load_model, read_config
from rvm_ros.checkpoint.builtin import DEFAULT_SIZE, builtin_path, resolve
from rvm_ros.runtime import create_encoder
from rvm_ros.runtime.base import BackendUnavailable

MAX_BYTES = 20 * 1000 * 1000


def test_default_resolves_and_is_small() -> None:
    path = builtin_path()
    assert resolve("default") == resolve("builtin:default") == str(path)
    assert resolve("random:tiny") == "random:tiny"
    assert path.stat().st_size <= MAX_BYTES
    with pytest.raises(CheckpointError, match="unknown built-in"):
        resolve("builtin:nosuch")


def test_default_loads_with_decoder() -> None:
    model = load_model("default")
    assert model.decoder is not None
    assert read_config("builtin:default") == model.config


def _frames(t: int) -> np.ndarray:
    h, w = DEFAULT_SIZE
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (h, w + 4 * t, 3), dtype=np.uint8)
    return np.stack([base[:, 4 * i : 4 * i + w] for i in range(t)])  # a panning camera


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_default_runs_on_every_cpu_backend(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RVM_ROS_CACHE", str(tmp_path / "cache"))
    h, w = DEFAULT_SIZE
    frames = _frames(3)
    reference = create_encoder(str(builtin_path()), "torch", "fp32", "cpu", h, w, max_batch=1)
    try:
        encoder = create_encoder(str(builtin_path()), backend, "fp32", "cpu", h, w, max_batch=1)
    except BackendUnavailable as exc:
        pytest.skip(f"{backend} is not installed here: {exc}")
    for frame in frames:
        want = reference.step(frame[None], ["cam"])
        got = encoder.step(frame[None], ["cam"])
        assert got.shape == (1, 1 + (h // 16) * (w // 16), 192)
        cos = (got * want).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(want, axis=-1))
        assert cos.min() > 0.999, (backend, float(cos.min()))
    if backend == "onnxruntime":
        assert list((tmp_path / "cache").rglob("*.onnx")), "no ONNX export was written"
