"""Frames for `rvm-ros eval-features`: video / bag shots and the benchmark's source images."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rvm_ros.evaluation.features import Unit
from rvm_ros.training.data import DataError, read_bag_frames, resolve_video, shot_boundaries

__all__ = ["DEFAULT_VIDEOS", "benchmark_sources", "load_units"]

DEFAULT_VIDEOS: tuple[str, ...] = ("sample:bikes.mp4",)
"""Development material used when no video or bag is given."""


def _crop_resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre crop to the aspect, then resize (area)."""
    import cv2

    hs, ws = rgb.shape[:2]
    f = min(hs / height, ws / width)
    ch, cw = round(height * f), round(width * f)
    y, x = (hs - ch) // 2, (ws - cw) // 2
    return np.asarray(
        cv2.resize(rgb[y : y + ch, x : x + cw], (width, height), interpolation=cv2.INTER_AREA)
    )


def _shots(name: str, frames: np.ndarray, min_frames: int, max_frames: int) -> list[Unit]:
    cuts = [0, *shot_boundaries(frames), len(frames)]
    out = []
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        if b - a >= min_frames:
            out.append(Unit(f"{name}#{i}", frames[a : min(b, a + max_frames)]))
    return out


def load_units(
    videos: Sequence[str],
    bags: Sequence[str],
    bag_topics: Sequence[str],
    height: int,
    width: int,
    min_frames: int,
    max_frames: int,
) -> list[Unit]:
    """Every shot of the videos and bag image topics with at least ``min_frames`` frames.

    Frames are centre-cropped to the aspect and resized to ``height x width``; a shot
    longer than ``max_frames`` keeps its first ``max_frames``.

    Raises:
        DataError: An unreadable video or bag, or fewer than two shots in all.
    """
    from rvm_ros.evaluation.held_out import read_eval_video

    units: list[Unit] = []
    for video in videos:
        frames = read_eval_video(video, height, width)
        units += _shots(Path(video).name, frames, min_frames, max_frames)
    for bag in bags:
        for topic, raw in read_bag_frames(bag, tuple(bag_topics), height, width).items():
            frames = np.stack([_crop_resize(f, height, width) for f in raw])
            units += _shots(f"{Path(bag).name}{topic}", frames, min_frames, max_frames)
    if len(units) < 2:
        raise DataError(
            f"the variance decomposition needs at least two shots of >= {min_frames} frames; "
            f"got {len(units)} from {[*videos, *bags]}"
        )
    return units


def benchmark_sources(
    videos: Sequence[str],
    bags: Sequence[str],
    bag_topics: Sequence[str],
    images: Sequence[str],
    per_video: int = 4,
) -> list[tuple[str, np.ndarray]]:
    """Source images of the benchmark's warps: spread frames of the videos and bags and the
    still images; with none of them, the benchmark's development sources.

    Raises:
        DataError: Unreadable input, or fewer than two images.
    """
    import cv2

    from rvm_ros.tracking.evaluation.sequence import BenchmarkError
    from rvm_ros.tracking.evaluation.sources import development_sources, sources_from_files

    if not (videos or bags or images):
        return development_sources()
    out: list[tuple[str, np.ndarray]] = []
    for video in videos:
        try:
            out += sources_from_files([resolve_video(video)], per_video)
        except BenchmarkError as exc:
            raise DataError(f"{video}: {exc}") from None
    for image in images:
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"image {image} cannot be read")
        out.append((Path(image).stem, np.ascontiguousarray(bgr[:, :, ::-1])))
    for bag in bags:
        for topic, frames in read_bag_frames(bag, tuple(bag_topics), 256, 256).items():
            pick = np.linspace(0, len(frames) - 1, min(per_video, len(frames))).round()
            out += [(f"{Path(bag).name}{topic}#{int(i)}", frames[int(i)]) for i in pick]
    if len(out) < 2:
        raise DataError("the benchmark needs at least two source images; give more input")
    return out
