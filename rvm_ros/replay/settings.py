"""Replay settings, outcome and error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rvm_ros.errors import RvmRosError

if TYPE_CHECKING:
    from rvm_ros.replay.records import RunReport

DEFAULT_CHECKPOINT = "builtin:default"


NODE_NAME = "rvm"


PARTIAL_MARKER = "PARTIAL"


class ReplayError(RvmRosError):
    """Replay cannot start or continue (bad arguments, unreadable bag, config mismatch)."""

    cause = "replay_failed"


@dataclass
class ReplaySettings:
    """How to replay (everything but the bags and the output folder).

    Attributes:
        config: ROS 2 parameters file of the node (``config/rvm.yaml``), or None.
        params: parameter overrides (dotted names, as in the file), applied last.
        checkpoint: checkpoint; default: the config's, else ``builtin:default`` (the shipped model).
        backend: inference backend; default: the config's (``auto``).
        precision: ``fp32`` | ``fp16`` | ``bf16``; default: the config's.
        device: torch device; default: the config's.
        threads: torch CPU threads (fixed for determinism).
        visuals: write plots and videos (PCA colouring, tracks).
        progress: show a progress bar (stderr).
        node_name: node name whose section of the params file applies.
    """

    config: Path | None = None
    params: dict[str, object] = field(default_factory=dict)
    checkpoint: str | None = None
    backend: str | None = None
    precision: str | None = None
    device: str | None = None
    threads: int = 1
    visuals: bool = True
    progress: bool = True
    node_name: str = NODE_NAME


@dataclass
class ReplayOutcome:
    """What :func:`replay` produced.

    Attributes:
        out_dir: the output folder (``DIR``, or ``DIR.partial`` when not complete).
        report: the report (as written to ``report.json``).
        complete: every readable frame was processed and everything written.
    """

    out_dir: Path
    report: RunReport
    complete: bool
