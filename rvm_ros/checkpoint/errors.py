"""The checkpoint error type and message helpers."""

from __future__ import annotations

from rvm_ros.errors import RvmRosError


class CheckpointError(RvmRosError, ValueError):
    """A checkpoint is unreadable, not an RVM checkpoint, or inconsistent."""

    cause = "invalid_checkpoint"


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


_MAX_LISTED = 8
