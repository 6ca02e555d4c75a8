"""Checkpoint sources of the runtime: a loaded model, a checkpoint file or ``random:``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Union, cast

import torch

if TYPE_CHECKING:
    from rvm_ros.model import RVM
from rvm_ros.runtime.base import InputError

# A checkpoint as the runtime takes it: a file path, a ``random:`` / ``builtin:`` spec, or
# an already loaded model.
CheckpointSource = Union[str, "os.PathLike[str]", torch.nn.Module]


def load_any(checkpoint: CheckpointSource) -> RVM:
    """An `RVM` from a loaded module, a checkpoint path or ``random:<variant>[:<seed>]``."""
    if isinstance(checkpoint, torch.nn.Module):
        if not callable(getattr(checkpoint, "step", None)) or not hasattr(checkpoint, "config"):
            raise InputError(f"{type(checkpoint).__name__} is not an RVM model (no step/config)")
        return cast("RVM", checkpoint)
    from rvm_ros.checkpoint.load import load_model

    return load_model(os.fspath(checkpoint) if not isinstance(checkpoint, str) else checkpoint)
