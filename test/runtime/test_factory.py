"""create_encoder / choose_backend: argument checks, auto choice, shared input checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rvm_ros.model import RVM
from rvm_ros.runtime import (
    InputError,
    choose_backend,
    create_encoder,
    encode_video,
)
from rvm_ros.runtime.backends.tensorrt import tensorrt_available
from rvm_ros.runtime.cpu_table import CPU_TABLE, cpu_feature_set


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the CPU-only choice; this machine has a CUDA device"
)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_auto_on_a_cpu_machine_follows_the_measured_table(precision: str) -> None:
    trt_ok, trt_why = tensorrt_available()
    assert not trt_ok
    features = cpu_feature_set()
    rows = CPU_TABLE[(features, precision)]
    choice = choose_backend(precision)
    assert choice.device == "cpu"
    assert choice.backend == next(b for b, _ in rows if _installed(b))  # fastest installed
    assert trt_why in choice.reason and "no CUDA device" in choice.reason
    assert f"({features} CPU, {precision})" in choice.reason
    assert f"{dict(rows)[choice.backend]} ({features} CPU, {precision})" in choice.reason


def _installed(backend: str) -> bool:
    import importlib.util

    return backend == "torch" or importlib.util.find_spec(backend) is not None


def test_auto_creates_a_working_encoder(
    tiny_model: RVM, tiny_io: dict[str, Any], onnx_cache: Path
) -> None:
    enc = create_encoder(tiny_model, backend="auto", cache_dir=onnx_cache)
    assert enc.info.reason.startswith("auto: ")
    feats = encode_video(enc, tiny_io["stream_video"])
    assert np.abs(feats - tiny_io["stream_features"]).max() <= 1e-4


def test_random_checkpoint_spec_loads() -> None:
    enc = create_encoder("random:tiny:3", backend="torch", height=32, width=48)
    assert enc.info.model_id == "tiny-random3"
    assert enc.info.tokens == 1 + 2 * 3
    out = enc.step(np.zeros((1, 32, 48, 3), np.uint8), ["cam"])
    assert out.shape == (1, 7, 64)


def test_unknown_backend_and_precision(tiny_model: RVM) -> None:
    with pytest.raises(InputError, match=r"unknown backend 'tflite'; choose one of"):
        create_encoder(tiny_model, backend="tflite")
    with pytest.raises(InputError, match=r"unknown precision 'fp8'"):
        create_encoder(tiny_model, precision="fp8")
    with pytest.raises(InputError, match="height 250 must be a positive multiple"):
        create_encoder(tiny_model, backend="torch", height=250)


@pytest.fixture(scope="module")
def encoder(tiny_model: RVM) -> Any:
    return create_encoder(tiny_model, backend="torch", height=32, width=32, max_batch=2)


@pytest.mark.parametrize(
    ("frames", "cameras", "message"),
    [
        (np.zeros((1, 32, 32, 3), np.float32), ["a"], "frames must be uint8 RGB"),
        (
            np.zeros((1, 32, 48, 3), np.uint8),
            ["a"],
            r"shape \[B, 32, 32, 3\].*got \[1, 32, 48, 3\]",
        ),
        (np.zeros((32, 32, 3), np.uint8), ["a"], r"got \[32, 32, 3\]"),
        (np.zeros((1, 32, 32, 4), np.uint8), ["a"], r"got \[1, 32, 32, 4\]"),
        (np.zeros((2, 32, 32, 3), np.uint8), ["a"], "got 2 frames but 1 camera names"),
        (np.zeros((0, 32, 32, 3), np.uint8), [], "empty batch"),
        (np.zeros((3, 32, 32, 3), np.uint8), ["a", "b", "c"], "exceeds max_batch=2"),
        (np.zeros((2, 32, 32, 3), np.uint8), ["a", "a"], r"camera\(s\) \['a'\] appear more"),
        (np.zeros((1, 32, 32, 3), np.uint8), [""], r"cameras\[0\] must be a non-empty string"),
        (np.zeros((1, 32, 32, 3), np.uint8), "a", "single string"),
        ([[0]], ["a"], "frames must be a numpy array"),
    ],
)
def test_bad_step_inputs_change_nothing(
    encoder: Any, frames: Any, cameras: Any, message: str
) -> None:
    encoder.reset()
    with pytest.raises(InputError, match=message):
        encoder.step(frames, cameras)
    assert encoder.cameras == []


def test_closed_encoder_refuses_steps(tiny_model: RVM) -> None:
    enc = create_encoder(tiny_model, backend="torch", height=32, width=32)
    with enc:
        enc.step(np.zeros((1, 32, 32, 3), np.uint8), ["a"])
    with pytest.raises(RuntimeError, match="torch encoder is closed"):
        enc.step(np.zeros((1, 32, 32, 3), np.uint8), ["a"])
    assert "backend=torch" in repr(enc)
