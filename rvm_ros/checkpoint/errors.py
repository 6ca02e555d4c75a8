"""The checkpoint error type and message helpers."""

from __future__ import annotations

from rvm_ros.errors import RvmRosError


class CheckpointError(RvmRosError, ValueError):
    """A checkpoint is unreadable, not an RVM checkpoint, or inconsistent."""

    cause = "invalid_checkpoint"
