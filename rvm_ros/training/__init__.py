"""RVM masked-reconstruction pre-training and fine-tuning (pure torch + data, no ROS).

See docs/TRAINING.md. Entry points: :func:`load_config` and :func:`train`.
"""

from __future__ import annotations

from rvm_ros.training.config import TrainConfig, TrainConfigError, load_config
from rvm_ros.training.trainer import TrainError, TrainResult, train

__all__ = ["TrainConfig", "TrainConfigError", "TrainError", "TrainResult", "load_config", "train"]
