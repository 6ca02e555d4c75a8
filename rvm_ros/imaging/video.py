"""Frame sources for the CLI tools (video files, ``.npy`` arrays) and frame-by-frame encoding.

Video files are decoded with OpenCV (BGR converted to RGB). ``.npy`` files are read
without pickle.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rvm_ros.errors import RvmRosError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


class FrameError(RvmRosError, ValueError):
    """Frames could not be read, or have the wrong type or shape."""

    cause = "invalid_frames"


class StreamEncoder(Protocol):
    """The runtime encoder interface (``rvm_ros.runtime``): numpy in, numpy out."""

    def step(self, frames: np.ndarray, cameras: list[str]) -> np.ndarray:
        """Features ``[B, N, D]`` of one frame per camera."""
        ...

    def reset(self, camera: str | None = None) -> None:
        """Zero the state of one camera (or all)."""
        ...


def read_video(path: str | os.PathLike[str], max_frames: int | None = None) -> np.ndarray:
    """Decode a video file to RGB frames.

    Args:
        path: Video file readable by OpenCV.
        max_frames: Stop after this many frames (None: all).

    Returns:
        uint8 ``[T, H, W, 3]`` RGB.

    Raises:
        FrameError: Missing, undecodable, or empty video.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FrameError(f"{path}: no such file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise FrameError(f"{path}: OpenCV cannot open this video")
        frames: list[np.ndarray] = []
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise FrameError(f"{path}: no frame could be decoded")
    return np.stack(frames)  # [T, H, W, 3]


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
    return array


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
) -> np.ndarray:
    """Frames of a video file or ``.npy``, optionally resized, ready for the model.

    Args:
        path: Video file, or ``.npy`` of uint8 ``[T, H, W, 3]`` / ``[B, T, H, W, 3]``.
        height: Output height (both or neither of height / width).
        width: Output width.
        max_frames: Keep at most this many frames.
        patch_size: The result's H and W must be divisible by this.

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
        frames = read_video(path, max_frames)[None]
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


def encode_frames(
    model_or_encoder: Any,
    frames: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Features of clips computed frame by frame from the zero state.

    Args:
        model_or_encoder: An :class:`rvm_ros.model.RVM`, or a runtime encoder with
            ``step(frames, cameras)`` / ``reset(camera)`` (see ``rvm_ros.runtime``).
        frames: uint8 ``[B, T, H, W, 3]`` RGB.
        progress: Called as ``progress(done, total)`` after each frame.

    Returns:
        float32 ``[B, T, 1+h*w, D]``.
    """
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise FrameError(f"frames must be [B, T, H, W, 3], got {frames.shape}")
    b, t = frames.shape[:2]
    import torch

    from rvm_ros.model import RVM

    out: list[np.ndarray] = []
    if isinstance(model_or_encoder, RVM):
        model = model_or_encoder
        device = next(model.parameters()).device
        state = model.init_state(b, frames.shape[2], frames.shape[3])
        with torch.inference_mode():
            for i in range(t):
                x = torch.from_numpy(np.ascontiguousarray(frames[:, i])).to(device)
                feats, state = model.step(x, state)
                out.append(feats.float().cpu().numpy())
                if progress:
                    progress(i + 1, t)
    else:
        encoder: StreamEncoder = model_or_encoder
        cameras = [f"clip{i}" for i in range(b)]
        for cam in cameras:
            encoder.reset(cam)
        for i in range(t):
            out.append(np.asarray(encoder.step(frames[:, i], cameras), dtype=np.float32))
            if progress:
                progress(i + 1, t)
    return np.stack(out, axis=1).astype(np.float32, copy=False)  # [B, T, N, D]
