"""Checkpoint sources of the runtime: a loaded model, a checkpoint file or ``random:``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch

if TYPE_CHECKING:
    from rvm_ros.model import RVM
from rvm_ros.runtime.base import InputError


def load_any(checkpoint: Any) -> RVM:
    """An `RVM` from a loaded module, a checkpoint path or ``random:<variant>[:<seed>]``."""
    if isinstance(checkpoint, torch.nn.Module):
        if not callable(getattr(checkpoint, "step", None)) or not hasattr(checkpoint, "config"):
            raise InputError(f"{type(checkpoint).__name__} is not an RVM model (no step/config)")
        return cast("RVM", checkpoint)
    from rvm_ros.checkpoint.load import load_model

    return load_model(str(checkpoint))
