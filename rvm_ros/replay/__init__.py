"""Off-robot evaluation: replay bags through the node's processing core.

:mod:`.settings` (settings, outcome, errors), :mod:`.topics` (image topic -> camera
mapping), :mod:`.config` (node parameters for a replay), :mod:`.ledger` (per-camera
record of every frame), :mod:`.ground_truth` (reference tracks, TAP-Vid metrics),
:mod:`.threads` (bag reader and features writer threads), :mod:`.run` (the loop over one
bag), :mod:`.workers` (several bags, worker processes, the combined report),
:mod:`.report` (report files and plots), :mod:`.demo` (the ``make demo`` job).
"""

from __future__ import annotations

from rvm_ros.replay.settings import (
    DEFAULT_CHECKPOINT,
    PARTIAL_MARKER,
    ReplayError,
    ReplayOutcome,
    ReplaySettings,
)
from rvm_ros.replay.workers import replay

__all__ = [
    "DEFAULT_CHECKPOINT",
    "PARTIAL_MARKER",
    "ReplayError",
    "ReplayOutcome",
    "ReplaySettings",
    "replay",
]
