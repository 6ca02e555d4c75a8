"""Where a run resumes: the newest checkpoint pair of a run folder that is intact and whose
two files agree.

A checkpoint is two files, ``<tag>.safetensors`` (weights) and ``<tag>.state.pt``
(optimiser, scheduler, RNG, step); the state records the sha256 of the weights it was
saved with. Each file is replaced atomically, but the pair is not: a crash between the
two leaves ``last.*`` disagreeing. A resume therefore takes the newest *consistent* pair
among ``last`` and the ``step_<n>`` checkpoints, and says which damaged ones it skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import atomic_write, file_sha256
from rvm_ros.training.errors import TrainError

__all__ = [
    "RESUME_FREE",
    "WEIGHTS_SHA256",
    "DamagedRun",
    "ResumePoint",
    "check_same_run",
    "comparable",
    "find_resume_point",
    "has_checkpoints",
    "truncate_metrics",
]

LOG = logging.getLogger(__name__)
#: Key of the weights' sha256 in a ``.state.pt``.
WEIGHTS_SHA256 = "weights_sha256"
#: Run-level fields that may differ between the runs of one resumed training (they change
#: no number).
RESUME_FREE = (
    "out_dir",
    "progress",
    "threads",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
)
_RESUME_FREE_DATA = ("workers",)


class DamagedRun(RvmRosError, RuntimeError):
    """A run folder with checkpoint files, none of them intact."""

    cause = "damaged_run"


@dataclass(frozen=True)
class ResumePoint:
    """An intact, consistent checkpoint pair.

    Attributes:
        weights: The ``.safetensors`` file.
        state: The loaded ``.state.pt`` dict.
        tag: ``last`` or ``step_<n>``.
    """

    weights: Path
    # Any: a loaded .state.pt holds mixed values (tensors, optimiser dicts, numbers).
    state: dict[str, Any]
    tag: str

    @property
    def step(self) -> int:
        """The optimiser step the pair was saved at."""
        return int(self.state["step"])


def has_checkpoints(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds any training-state file (a run to resume)."""
    return any(out_dir.glob("*.state.pt"))


# Any: a loaded .state.pt holds mixed values (tensors, optimiser dicts, numbers).
def _check_pair(weights: Path, state_path: Path) -> tuple[dict[str, Any] | None, str]:
    """``(state, "")`` when the pair is intact and agrees, else ``(None, why)``."""
    if not weights.is_file():
        return None, f"{weights.name} is missing"
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        int(state["step"])
    except Exception as exc:  # truncated / damaged pickle-free archive, missing keys
        return None, f"{state_path.name} is damaged ({type(exc).__name__})"
    want = state.get(WEIGHTS_SHA256)
    if want is not None and file_sha256(weights) != want:
        return None, f"{weights.name} does not match {state_path.name} (damaged or half-saved)"
    return state, ""


def find_resume_point(out_dir: Path) -> ResumePoint | None:
    """The newest intact checkpoint pair in ``out_dir`` (None: no checkpoint at all).

    Raises:
        DamagedRun: Checkpoint files exist but no pair is intact.
    """
    states = sorted(out_dir.glob("step_*.state.pt"), reverse=True)
    last = out_dir / "last.state.pt"
    if last.is_file():
        states.insert(0, last)
    best: ResumePoint | None = None
    problems = []
    for state_path in states:
        tag = state_path.name.removesuffix(".state.pt")
        weights = state_path.with_name(f"{tag}.safetensors")
        state, why = _check_pair(weights, state_path)
        if state is None:
            problems.append(why)
            continue
        if best is None or int(state["step"]) > best.step:
            best = ResumePoint(weights, state, tag)
    if best is None and problems:
        raise DamagedRun(
            f"{out_dir}: no intact checkpoint to resume from ({'; '.join(problems)}); "
            "use a new out_dir"
        )
    for why in problems:
        LOG.warning("%s: skipped a damaged checkpoint: %s", out_dir, why)
    if best is not None and best.tag != "last" and problems:
        LOG.warning("%s: resuming from %s (step %d)", out_dir, best.weights.name, best.step)
    return best


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the metric lines up to ``step`` (drops those of a run that went on after its
    checkpoint, and a line half-written by a crash)."""
    if not path.is_file():
        return
    keep, dropped = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            at = int(record.get("step", 0))
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            dropped += 1
            continue
        if at <= step:
            keep.append(line)
    if dropped:
        LOG.warning("%s: dropped %d damaged line(s)", path, dropped)
    atomic_write(path, lambda tmp: tmp.write_text("".join(f"{line}\n" for line in keep)))


def comparable(config: Mapping[str, object], free: tuple[str, ...] = ()) -> dict[str, object]:
    """A configuration dict without the fields a resumed run may change
    (:data:`RESUME_FREE`, ``data.workers`` and ``free``)."""
    out = {k: v for k, v in config.items() if k not in RESUME_FREE and k not in free}
    data = out.get("data")
    if isinstance(data, dict):
        out["data"] = {k: v for k, v in data.items() if k not in _RESUME_FREE_DATA}
    return out


def check_same_run(
    config_path: Path,
    saved: dict[str, object],
    now: dict[str, object],
    done: Callable[[], int],
    warmup_steps: int,
) -> None:
    """Refuse to resume a run folder under another configuration.

    The length (``steps``) may change while the run is still in its warm-up: the schedule so
    far does not depend on it, so the result equals a fresh run of the new length.

    Args:
        config_path: The folder's ``config.yaml`` (for the message).
        saved: :func:`comparable` of the saved configuration (may be changed).
        now: :func:`comparable` of this run's configuration.
        done: The steps the folder's run has done (called only when the lengths differ).
        warmup_steps: This run's warm-up length.

    Raises:
        TrainError: The configurations differ.
    """
    if saved != now and saved.get("steps") != now.get("steps"):
        steps = now.get("steps")
        finished = done()
        if finished <= warmup_steps and isinstance(steps, int) and finished < steps:
            saved["steps"] = steps
    if saved != now:
        raise TrainError(
            f"{config_path.parent} holds a run with another configuration ({config_path}); "
            "use a new out_dir or the same configuration to resume (steps may change only "
            "until the end of the warm-up)"
        )
