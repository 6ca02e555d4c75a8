"""Frame loading (video / .npy) and frame-by-frame encoding through both seams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvm_ros.imaging.frames import load_frames, resize_frames
from rvm_ros.imaging.sample_videos import SampleVideoError, find_sample_video
from rvm_ros.imaging.video import FrameError, read_video


def test_read_video_rgb(sample_video: Path) -> None:
    frames = read_video(sample_video, max_frames=4)
    assert frames.shape == (4, 144, 176, 3) and frames.dtype == np.uint8
    # consecutive frames of a real video differ, but not wildly
    diff = np.abs(frames[1].astype(int) - frames[0].astype(int)).mean()
    assert 0 < diff < 40


def test_load_frames_video_and_resize(sample_video: Path) -> None:
    frames = load_frames(sample_video, 64, 96, max_frames=2)
    assert frames.shape == (1, 2, 64, 96, 3) and frames.dtype == np.uint8
    with pytest.raises(FrameError, match="give both height and width"):
        load_frames(sample_video, height=64)


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


def test_find_sample_video_names_the_missing_file() -> None:
    assert find_sample_video("carphone_pristine.mp4").is_file()
    with pytest.raises(SampleVideoError, match=r"no sample video 'nope\.mp4'") as info:
        find_sample_video("nope.mp4")
    assert info.value.cause == "sample_video_missing"
