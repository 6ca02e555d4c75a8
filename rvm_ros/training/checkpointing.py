"""Checkpoint files of a run folder: ``step_<n>`` pairs, ``last.*``, pruning, restoring.

A checkpoint is a pair: ``<tag>.safetensors`` (weights in the project format) and
``<tag>.state.pt`` (optimiser, scheduler, RNG, step; see :mod:`rvm_ros.training.resume`).
Every file is written beside its place and renamed into it.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import torch

from rvm_ros.fsutil import atomic_write
from rvm_ros.model import RVM
from rvm_ros.training.errors import TrainError
from rvm_ros.training.resume import ResumePoint

__all__ = [
    "checkpoint_paths",
    "prune_step_checkpoints",
    "publish_last",
    "restore_training_state",
    "save_torch_atomic",
]


def checkpoint_paths(out_dir: Path, tag: str) -> tuple[Path, Path]:
    """``(<tag>.safetensors, <tag>.state.pt)`` in ``out_dir``."""
    return out_dir / f"{tag}.safetensors", out_dir / f"{tag}.state.pt"


def save_torch_atomic(obj: object, path: Path) -> None:
    """``torch.save`` to a sibling, renamed into place.

    Raises:
        OSError: The file cannot be written (a full disk, which torch reports as a
            RuntimeError, included).
    """

    def write(tmp: Path) -> None:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch's writer reports a full disk as RuntimeError
            raise OSError(f"cannot write {path}: {str(exc).splitlines()[0]}") from None

    atomic_write(path, write)


def publish_last(out_dir: Path, weights: Path, state_path: Path) -> Path:
    """Copy a just-saved pair to ``last.*`` (each file atomically); returns
    ``last.safetensors``."""
    last_w, last_s = checkpoint_paths(out_dir, "last")
    for src, dst in ((weights, last_w), (state_path, last_s)):
        atomic_write(dst, functools.partial(shutil.copyfile, src))
    return last_w


def prune_step_checkpoints(out_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` ``step_<n>`` pairs."""
    steps = sorted(out_dir.glob("step_*.safetensors"))
    for old in steps[: max(0, len(steps) - keep)]:
        old.unlink(missing_ok=True)
        old.with_name(old.name.replace(".safetensors", ".state.pt")).unlink(missing_ok=True)


def restore_training_state(
    point: ResumePoint,
    model: RVM,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Load a resume point's weights into ``model``, and the optimiser, scheduler and
    torch RNG states.

    Raises:
        TrainError: The saved architecture differs from ``model``'s.
    """
    from safetensors.torch import load_file

    state = point.state
    if state["config"] != model.config.to_json():
        raise TrainError(f"{point.weights}: saved architecture differs from the configured one")
    model.load_state_dict(load_file(str(point.weights)), strict=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
