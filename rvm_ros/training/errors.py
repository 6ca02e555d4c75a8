"""The error a training or distillation run stops with."""

from __future__ import annotations

from rvm_ros.errors import RvmRosError

__all__ = ["TrainError"]


class TrainError(RvmRosError, RuntimeError):
    """A training run that cannot start or continue (the message says why)."""

    cause = "train"
