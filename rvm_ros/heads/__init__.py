"""Planning heads on scene tokens (pure PyTorch: no ROS, no I/O).

:class:`PlanningHead` pools all cameras' tokens by attention and predicts ego poses at
fixed horizons; :class:`TemporalAggregator` mixes a window of per-frame tokens;
:mod:`~rvm_ros.heads.baselines` extrapolates past poses; :mod:`~rvm_ros.heads.metrics`
scores trajectories per driving segment; :func:`fit_head` trains (one process or DDP).
"""

from rvm_ros.heads.baselines import constant_turn_rate, constant_velocity
from rvm_ros.heads.config import HeadConfig
from rvm_ros.heads.fit import FitConfig, HeadBatch, fit_head, predict
from rvm_ros.heads.metrics import SEGMENTS, segment_labels, trajectory_metrics
from rvm_ros.heads.planning import PlanningHead
from rvm_ros.heads.samples import HeadSamples, concat_samples
from rvm_ros.heads.temporal import TemporalAggregator

__all__ = [
    "SEGMENTS",
    "FitConfig",
    "HeadBatch",
    "HeadConfig",
    "HeadSamples",
    "PlanningHead",
    "TemporalAggregator",
    "concat_samples",
    "constant_turn_rate",
    "constant_velocity",
    "fit_head",
    "predict",
    "segment_labels",
    "trajectory_metrics",
]
