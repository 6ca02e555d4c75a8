"""Frames for the model from a video file or a ``.npy`` array (``encode``, ``bench``,
calibration): read, checked, resized to the model input.

``.npy`` files are read without pickle; videos through :mod:`.video`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rvm_ros.imaging.video import FrameError, read_video, video_properties

__all__ = ["frames_shape", "load_frames", "read_npy_frames", "resize_frames"]


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
