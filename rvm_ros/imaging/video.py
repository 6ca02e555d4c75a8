"""Video files read with OpenCV (BGR converted to RGB): the one place that opens them.

:func:`iter_video` (frame by frame), :func:`read_video` (all at once),
:func:`video_properties` (container header only). A video that decodes fewer frames than
its container lists is reported (:func:`check_frame_count`). Frames for the model from a
video or a ``.npy`` file: :mod:`.frames`; the sample videos: :mod:`.sample_videos`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rvm_ros.errors import RvmRosError

__all__ = [
    "VIDEO_SUFFIXES",
    "FrameError",
    "check_frame_count",
    "iter_video",
    "read_video",
    "video_properties",
]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


class FrameError(RvmRosError, ValueError):
    """Frames could not be read, or have the wrong type or shape."""

    cause = "invalid_frames"


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
