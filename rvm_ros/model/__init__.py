"""Pure PyTorch RVM (no ROS, no file or network I/O)."""

from __future__ import annotations

from rvm_ros.model.config import VARIANTS, RVMConfig
from rvm_ros.model.rvm import RVM

__all__ = ["RVM", "VARIANTS", "RVMConfig"]
