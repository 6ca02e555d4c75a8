"""Training data for planner heads from replayed drives.

:mod:`.scene_tokens` (``SceneTokenDataset``: the SceneTokens a replay wrote, with
ego-pose targets from an odometry / pose topic).
"""

from __future__ import annotations

from rvm_ros.datasets.scene_tokens import POSE_TYPES, DatasetError, PoseTrack, SceneTokenDataset

__all__ = ["POSE_TYPES", "DatasetError", "PoseTrack", "SceneTokenDataset"]
