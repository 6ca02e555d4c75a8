"""`rvm-ros encode --backend ...` runs through the runtime and reproduces the official features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rvm_ros.cli import main
from rvm_ros.runtime import choose_backend


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino", "auto"])
def test_encode_backends_reproduce_official_features(
    backend: str,
    fixtures_dir: Path,
    tiny_io: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RVM_ROS_CACHE", str(tmp_path / "cache"))
    frames = tmp_path / "clips.npy"
    np.save(frames, tiny_io["stream2_video"])  # [2, 3, 128, 192, 3]
    out = tmp_path / "features.npy"
    args = ["--checkpoint", str(fixtures_dir / "rvm_tiny_params.npz"), "--input", str(frames)]
    rc = main(["encode", *args, "--output", str(out), "--backend", backend])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    want_backend = choose_backend("fp32").backend if backend == "auto" else backend
    assert f"{want_backend} fp32 on cpu" in captured.out
    feats = np.load(out)
    assert feats.shape == tiny_io["stream2_features"].shape
    assert np.abs(feats - tiny_io["stream2_features"]).max() <= 1e-4


def test_encode_unavailable_backend_is_a_clear_error(
    fixtures_dir: Path, tiny_io: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    frames = tmp_path / "clip.npy"
    np.save(frames, tiny_io["stream_video"][0, :2])
    args = ["--checkpoint", str(fixtures_dir / "rvm_tiny_params.npz"), "--input", str(frames)]
    rc = main(["encode", *args, "--output", str(tmp_path / "f.npy"), "--backend", "tensorrt"])
    assert rc == 2
    assert "the tensorrt backend cannot run: tensorrt cannot be imported" in capsys.readouterr().err
