"""The processing core shared by the live node and the bag replay.

`Processor` runs the per-camera state policy (resets), preprocessing, one batched
encoder step per batch, pooling, output dtype and point tracking; `group_batches`
(offline) and `LatestFrameSlots` (live) decide which frames form a batch. Pure Python
and numpy, no ROS imports.
"""

from __future__ import annotations

from rvm_ros.pipeline.batching import LatestFrameSlots, SlotCounters, group_batches
from rvm_ros.pipeline.config import (
    FEATURE_DTYPES,
    FEATURE_POOLS,
    RESIZE_MODES,
    ConfigError,
    ProcessingConfig,
)
from rvm_ros.pipeline.processor import Processor
from rvm_ros.pipeline.types import (
    RESET_REASONS,
    SKIP_REASONS,
    CameraStats,
    FrameInput,
    FrameResult,
    FrameSkip,
    ImageTracks,
    TrackJob,
)

__all__ = [
    "FEATURE_DTYPES",
    "FEATURE_POOLS",
    "RESET_REASONS",
    "RESIZE_MODES",
    "SKIP_REASONS",
    "CameraStats",
    "ConfigError",
    "FrameInput",
    "FrameResult",
    "FrameSkip",
    "ImageTracks",
    "LatestFrameSlots",
    "ProcessingConfig",
    "Processor",
    "SlotCounters",
    "TrackJob",
    "group_batches",
]
