"""Planner-head samples: tokens of a step, past poses, future poses, driving segment.

Built from any source of per-step tokens with a pose track: the token sources of a bag
(:mod:`rvm_ros.datasets.drive_tokens`) or a replay's SceneTokens
(:class:`~rvm_ros.datasets.scene_tokens.SceneTokenDataset`). A step is a sample when the
poses cover its whole past window and its longest horizon (no extrapolation).

Poses are in the step's own ego frame (x forward, y left, yaw): targets at
``horizons_s``, inputs at ``PAST_S`` (oldest first; the last is 0.1 s ago, so the
constant-velocity baseline sees the current velocity).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from rvm_ros.datasets.scene_tokens import PoseTrack, SceneTokenDataset
from rvm_ros.heads.metrics import segment_labels
from rvm_ros.heads.samples import HeadSamples, concat_samples
from rvm_ros.rotations import quaternion_to_matrix, quaternion_yaw

__all__ = ["PAST_S", "build_samples", "samples_from_dataset"]

#: Times of the past poses given to heads and baselines (s, oldest first).
PAST_S: tuple[float, ...] = (-2.0, -1.0, -0.5, -0.2, -0.1)
_SPEED_STEP_S = 0.25


def _relative(now: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    rel = quaternion_to_matrix(now[3:]).T @ (p[:3] - now[:3])
    dyaw = quaternion_yaw(p[3:]) - quaternion_yaw(now[3:])
    return float(rel[0]), float(rel[1]), math.atan2(math.sin(dyaw), math.cos(dyaw))


def _step_sample(
    poses: PoseTrack, stamp: int, horizons: Sequence[float]
) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]], list[float]] | None:
    now = poses.at(stamp)
    if now is None:
        return None
    past, future, speeds = [], [], []
    for dt in PAST_S:
        p = poses.at(stamp + round(dt * 1e9))
        if p is None:
            return None
        past.append(_relative(now, p))
    for h in horizons:
        p = poses.at(stamp + round(h * 1e9))
        if p is None:
            return None
        future.append(_relative(now, p))
    prev = poses.at(stamp + round(PAST_S[-1] * 1e9))
    assert prev is not None
    speeds.append(float(np.linalg.norm(now[:3] - prev[:3])) / -PAST_S[-1])
    t = 0.0
    while t < max(horizons) - 1e-9:
        a = poses.at(stamp + round(t * 1e9))
        b = poses.at(stamp + round((t + _SPEED_STEP_S) * 1e9))
        if a is None or b is None:
            return None
        speeds.append(float(np.linalg.norm(b[:3] - a[:3])) / _SPEED_STEP_S)
        t += _SPEED_STEP_S
    return past, future, speeds


def build_samples(
    stamps_ns: np.ndarray,
    tokens: dict[str, np.ndarray],
    poses: PoseTrack,
    horizons_s: tuple[float, ...] = (0.5, 1.0, 2.0),
    max_window: int = 8,
    drive: int = 0,
) -> HeadSamples:
    """Samples of one drive.

    Args:
        stamps_ns: ``[T]`` step stamps.
        tokens: Source -> ``[T, Ncam, N, C]`` tokens.
        poses: The ego pose track.
        horizons_s: Future times of the targets.
        max_window: Steps kept in each sample's window.
        drive: Drive number stored with the samples.
    """
    keep, past, future, speeds = [], [], [], []
    for i, stamp in enumerate(stamps_ns.tolist()):
        got = _step_sample(poses, int(stamp), horizons_s)
        if got is None:
            continue
        keep.append(i)
        past.append(got[0])
        future.append(got[1])
        speeds.append(got[2])
    idx = torch.tensor(keep, dtype=torch.int64)
    offsets = torch.arange(-max_window + 1, 1)
    window = (idx[:, None] + offsets[None]).clamp(min=0)
    target = torch.tensor(future, dtype=torch.float32).reshape(-1, len(horizons_s), 3)
    labels = segment_labels(torch.tensor(speeds).reshape(len(keep), -1), target)
    return HeadSamples(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tokens.items()},
        idx,
        window,
        torch.tensor(past, dtype=torch.float32).reshape(-1, len(PAST_S), 3),
        target,
        labels,
        torch.full((len(keep),), drive, dtype=torch.int64),
        tuple(horizons_s),
    )


def samples_from_dataset(
    ds: SceneTokenDataset,
    horizons_s: tuple[float, ...] = (0.5, 1.0, 2.0),
    max_window: int = 8,
    pool: int = 1,
    progress: Callable[[int], object] | None = None,
) -> HeadSamples:
    """Samples of a replay's SceneTokens (one drive per replayed bag), source ``scene``.

    Each step's ``img_feats`` ``[Ncam, C, h, w]`` become ``[Ncam, h*w / pool^2, C]``
    tokens (average-pooled ``pool`` x ``pool``); poses come from the dataset's pose topic.

    Raises:
        DatasetError: The dataset has no pose topic.
    """
    from rvm_ros.datasets.scene_tokens import DatasetError

    parts = []
    start = 0
    for drive, (stamps, poses) in enumerate(ds.segment_poses()):
        if poses is None:
            raise DatasetError("train-head needs ego poses: give the dataset a pose topic")
        steps = []
        for i in range(start, start + stamps.size):
            feats = ds[i]["img_feats"].float()  # [Ncam, C, h, w]
            if pool > 1:
                feats = torch.nn.functional.avg_pool2d(feats, pool, ceil_mode=True)
            steps.append(feats.flatten(2).transpose(1, 2).half().numpy())  # [Ncam, N, C]
            if progress is not None:
                progress(1)
        start += stamps.size
        if steps:
            tokens = {"scene": np.stack(steps)}
            parts.append(build_samples(stamps, tokens, poses, horizons_s, max_window, drive))
    return concat_samples(parts)
