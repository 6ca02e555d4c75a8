"""OpenCV's worker threads for the node process (the ``opencv_threads`` parameter).

The node's OpenCV work per frame (colour conversion, resizing to the model size, the
tracker's pyramidal Lucas-Kanade and template matching over 64 points) is too small to
gain from OpenCV's thread pool: measured on this project's 2-core machine, the tracker
took the same wall time with one thread and 0.74x the CPU (docs/BENCHMARKS.md, issue 26).
The setting is process-wide, like ``retain_large_buffers``.
"""

from __future__ import annotations

__all__ = ["apply_opencv_threads"]


def apply_opencv_threads(threads: int) -> int:
    """Set OpenCV's worker threads to ``threads`` (0: leave OpenCV's default).

    Returns:
        The number of threads OpenCV uses afterwards.
    """
    import cv2

    if threads < 0:
        raise ValueError(f"opencv_threads must be >= 0, got {threads}")
    if threads > 0:
        cv2.setNumThreads(threads)
    return int(cv2.getNumThreads())
