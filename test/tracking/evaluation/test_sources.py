"""Benchmark sources: video frames read through imaging.video, errors as BenchmarkError."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rvm_ros.imaging.video import read_video, video_properties
from rvm_ros.tracking.evaluation.sequence import BenchmarkError
from rvm_ros.tracking.evaluation.sources import sources_from_files


@pytest.fixture
def still(tmp_path: Path) -> Path:
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), np.full((40, 50, 3), 90, np.uint8))
    return path


@pytest.mark.parametrize("per_video", [1, 3, 5])
def test_video_frames_are_spread_over_the_video(
    sample_video: Path, still: Path, per_video: int
) -> None:
    """``frames_per_video`` RGB frames at ``i * (listed count // frames_per_video)``."""
    srcs = sources_from_files([sample_video, still], frames_per_video=per_video)
    step = max(1, video_properties(sample_video)[1] // per_video)
    decoded = read_video(sample_video, max_frames=step * (per_video - 1) + 1)  # [T, H, W, 3]
    assert [n for n, _ in srcs] == [f"{sample_video.stem}#{j}" for j in range(per_video)] + ["grey"]
    for j, (_, frame) in enumerate(srcs[:per_video]):
        np.testing.assert_array_equal(frame, decoded[j * step])
        assert frame.flags.c_contiguous


def test_a_video_that_cannot_be_read_is_a_benchmark_error(tmp_path: Path, still: Path) -> None:
    """Not a video, or an empty file: one BenchmarkError naming the file (not a FrameError
    from the video reader, not a traceback from OpenCV)."""
    for name, data in [("noise.mp4", bytes(range(256)) * 64), ("empty.avi", b"")]:
        bad = tmp_path / name
        bad.write_bytes(data)
        with pytest.raises(BenchmarkError) as info:
            sources_from_files([bad, still])
        assert str(bad) in str(info.value)
        assert "cannot open this video" in str(info.value) or "no frame" in str(info.value)
        assert info.value.cause == "invalid_benchmark"
