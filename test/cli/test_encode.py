"""`rvm-ros encode`: reproduces the official fixture features; real video; user errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rvm_ros.checkpoint import load_model
from rvm_ros.cli import main

TOL = 1e-4


@pytest.fixture(scope="module")
def io_arrays(fixtures_dir: Path) -> dict[str, np.ndarray]:
    with np.load(fixtures_dir / "rvm_tiny_io.npz", allow_pickle=False) as data:
        return {
            k: data[k]
            for k in ("stream_video", "stream_features", "stream2_video", "stream2_features")
        }


def _encode(ckpt: Path | str, src: Path, out: Path, *extra: str) -> int:
    return main(
        ["encode", "--checkpoint", str(ckpt), "--input", str(src), "--output", str(out), *extra]
    )


def test_encode_fixture_video(
    fixtures_dir: Path, io_arrays: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "video.npy"
    np.save(src, io_arrays["stream_video"])  # [1, 5, 256, 256, 3]
    out = tmp_path / "features.npy"
    assert _encode(fixtures_dir / "rvm_tiny_params.npz", src, out) == 0
    assert "features [B=1, T=5, N=257, D=64]" in capsys.readouterr().out
    feats = np.load(out)
    assert feats.dtype == np.float32 and feats.shape == (1, 5, 257, 64)
    assert np.abs(feats - io_arrays["stream_features"]).max() <= TOL


def test_encode_batch2_and_4d(fixtures_dir: Path, io_arrays: dict, tmp_path: Path) -> None:
    src = tmp_path / "video2.npy"
    np.save(src, io_arrays["stream2_video"])  # [2, 3, 128, 192, 3]
    out = tmp_path / "f2.npy"
    assert _encode(fixtures_dir / "rvm_tiny_params.npz", src, out) == 0
    assert np.abs(np.load(out) - io_arrays["stream2_features"]).max() <= TOL
    one = tmp_path / "one.npy"
    np.save(one, io_arrays["stream2_video"][1])  # [T, H, W, 3]
    # an existing output is only replaced with --force (issue 12)
    assert _encode(fixtures_dir / "rvm_tiny_params.npz", one, out) == 2
    assert np.abs(np.load(out) - io_arrays["stream2_features"]).max() <= TOL  # untouched
    assert _encode(fixtures_dir / "rvm_tiny_params.npz", one, out, "--force") == 0
    assert np.abs(np.load(out)[0] - io_arrays["stream2_features"][1]).max() <= TOL


def test_encode_real_video(fixtures_dir: Path, sample_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "car.npy"
    ckpt = fixtures_dir / "rvm_tiny_params.npz"
    assert _encode(ckpt, sample_video, out, "--max-frames", "3") == 0
    feats = np.load(out)
    assert feats.shape == (1, 3, 1 + 9 * 11, 64)  # 144x176 frames
    # the same frames decoded here (BGR -> RGB) and stepped through the model directly
    cap = cv2.VideoCapture(str(sample_video))
    frames = []
    for _ in range(3):
        ok, bgr = cap.read()
        assert ok
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    model = load_model(ckpt)
    state = model.init_state(1, 144, 176)
    with torch.inference_mode():
        for t, rgb in enumerate(frames):
            f, state = model.step(torch.from_numpy(rgb[None]), state)
            np.testing.assert_allclose(feats[0, t], f[0].numpy(), atol=1e-5)


def test_encode_resized(fixtures_dir: Path, sample_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "small.npy"
    args = ("--max-frames", "2", "--height", "64", "--width", "96")
    assert _encode(fixtures_dir / "rvm_tiny_params.npz", sample_video, out, *args) == 0
    assert np.load(out).shape == (1, 2, 1 + 4 * 6, 64)


def test_encode_bf16_close_to_fixture(fixtures_dir: Path, io_arrays: dict, tmp_path: Path) -> None:
    src = tmp_path / "video.npy"
    np.save(src, io_arrays["stream_video"][:, :2])
    out = tmp_path / "bf16.npy"
    assert _encode(fixtures_dir / "rvm_tiny_params.npz", src, out, "--precision", "bf16") == 0
    a = np.load(out).astype(np.float64)
    b = io_arrays["stream_features"][:, :2].astype(np.float64)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert cos.min() >= 0.999


def test_encode_errors(
    fixtures_dir: Path, sample_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = "random:tiny"
    out = tmp_path / "f.npy"
    odd = tmp_path / "odd.npy"
    np.save(odd, np.zeros((2, 40, 64, 3), np.uint8))
    assert _encode(ckpt, odd, out) == 2
    assert "frame size 40x64 is not divisible by the patch size 16" in capsys.readouterr().err
    floats = tmp_path / "float.npy"
    np.save(floats, np.zeros((2, 32, 32, 3), np.float32))
    assert _encode(ckpt, floats, out) == 2
    assert "frames must be uint8, got float32" in capsys.readouterr().err
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((32, 32, 3), np.uint8))
    assert _encode(ckpt, flat, out) == 2
    assert "frames must be [T, H, W, 3] or [B, T, H, W, 3], got (32, 32, 3)" in (
        capsys.readouterr().err
    )
    assert _encode(ckpt, sample_video, out, "--height", "64") == 2
    assert "give both --height and --width" in capsys.readouterr().err
    assert _encode(ckpt, sample_video, out, "--height", "60", "--width", "64") == 2
    assert (
        "--height must be a positive multiple of 16 up to 8192, got 60" in capsys.readouterr().err
    )
    assert _encode(ckpt, sample_video, tmp_path / "f.txt") == 2
    assert "--output must end in .npy" in capsys.readouterr().err
    assert _encode(ckpt, tmp_path / "nothing.mp4", out) == 2
    assert "nothing.mp4: no such file" in capsys.readouterr().err
    assert _encode(tmp_path / "none.safetensors", odd, out) == 2
    assert "cannot load checkpoint" in capsys.readouterr().err
    assert not out.exists()


def test_encode_runs_at_the_model_card_size_and_warns_once_at_another(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rvm_ros.checkpoint.card import ModelCard
    from rvm_ros.checkpoint.random import random_model
    from rvm_ros.checkpoint.safetensors import save_safetensors

    model = random_model("tiny", seed=1)
    card = ModelCard(input_size=(32, 48))
    ckpt = save_safetensors(model.state_dict(), model.config, tmp_path / "t.safetensors", card=card)
    src = tmp_path / "frames.npy"
    np.save(src, np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    caplog.set_level("WARNING", logger="rvm_ros.checkpoint.card")
    out = tmp_path / "card.npy"
    assert _encode(ckpt, src, out) == 0
    assert np.load(out).shape == (1, 2, 1 + 2 * 3, 64)  # resized to the card's 32x48
    assert caplog.records == []
    for name in ("a.npy", "b.npy"):
        assert _encode(ckpt, src, tmp_path / name, "--height", "64", "--width", "64") == 0
        assert np.load(tmp_path / name).shape == (1, 2, 1 + 4 * 4, 64)
    assert len(caplog.records) == 1  # once per process, checkpoint and size
    assert "trained at 32x48" in caplog.text and "runs at 64x64" in caplog.text
