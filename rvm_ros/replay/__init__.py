"""Off-robot evaluation: replay bags through the node's processing core.

:mod:`.settings` (settings, outcome, errors), :mod:`.topics` (image topic -> camera
mapping), :mod:`.config` (node parameters for a replay), :mod:`.ledger` (per-camera
record of every frame), :mod:`.ground_truth` (reference tracks, TAP-Vid metrics),
:mod:`.threads` (bag reader and features writer threads), :mod:`.bag_setup` (one bag
opened, configured, its model loaded), :mod:`.run` (the loop over one bag),
:mod:`.encoders` (the model kept from bag to bag), :mod:`.jobs` (one bag as a unit of
work, the ``--resume`` journal), :mod:`.workers` (several bags, worker processes, the
combined report), :mod:`.records` (the report's record types), :mod:`.report` (report
files), :mod:`.visuals` (plots and videos), :mod:`.scene_tokens` (SceneTokens in a
replay), :mod:`.demo` (the ``make demo`` job). ``--ray``: :mod:`.ray_cluster` (options,
connecting), :mod:`.ray_worker` (the actor), :mod:`.ray_engine` (the driver),
:mod:`.ray_progress` (what the driver shows), :mod:`.ray_report` (the report's
``cluster`` entry).
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
