"""Trajectory metrics (ADE / FDE per horizon) and driving segments (straight, turning, stopping)."""

from __future__ import annotations

import math

import torch

__all__ = ["SEGMENTS", "segment_labels", "trajectory_metrics"]

#: Segment names, in label order.
SEGMENTS: tuple[str, ...] = ("straight", "turning", "stopping")
#: Turning: the heading changes by more than this over the longest horizon (rad).
TURN_RAD = math.radians(10.0)
#: Stopping: the ego is slower than this (m/s) now or somewhere in the horizon.
STOP_SPEED = 1.0


def segment_labels(speeds: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
    """Label each sample straight (0), turning (1) or stopping (2).

    Args:
        speeds: ``[B, S]`` speeds (m/s) now and over the horizon.
        future: ``[B, K, 3]`` true future poses (the last at the longest horizon).

    Returns:
        ``[B]`` int64: stopping where any speed is below :data:`STOP_SPEED` (braking to
        a stop, standing, pulling away), else turning where the heading changes by more
        than :data:`TURN_RAD`, else straight.
    """
    stopping = (speeds < STOP_SPEED).any(dim=1)
    turning = future[:, -1, 2].abs() > TURN_RAD
    out = torch.zeros(speeds.shape[0], dtype=torch.int64)
    out[turning] = 1
    out[stopping] = 2
    return out


def trajectory_metrics(
    pred: torch.Tensor,
    true: torch.Tensor,
    horizons_s: tuple[float, ...],
    labels: torch.Tensor | None = None,
) -> dict[str, dict[str, float]]:
    """ADE and FDE at each horizon, over all samples and per segment.

    ADE@h is the mean position error over the predicted poses up to ``h``; FDE@h the
    error at ``h`` (metres). Also the mean absolute yaw error at the last horizon (deg).

    Args:
        pred: ``[B, K, 3]``.
        true: ``[B, K, 3]``.
        horizons_s: The K horizons.
        labels: ``[B]`` segment labels (:func:`segment_labels`), or None.

    Returns:
        ``{"all" | segment: {"n": count, "ade@1.0s": ..., "fde@1.0s": ..., "yaw@2.0s": ...}}``.
    """
    err = (pred[..., :2] - true[..., :2]).norm(dim=-1)  # [B, K]
    yaw = (pred[..., 2] - true[..., 2] + math.pi) % (2 * math.pi) - math.pi
    groups = {"all": torch.ones(err.shape[0], dtype=torch.bool)}
    if labels is not None:
        for i, name in enumerate(SEGMENTS):
            groups[name] = labels == i
    out: dict[str, dict[str, float]] = {}
    for name, sel in groups.items():
        n = int(sel.sum())
        row: dict[str, float] = {"n": float(n)}
        for k, h in enumerate(horizons_s):
            e = err[sel]
            row[f"ade@{h:g}s"] = float(e[:, : k + 1].mean()) if n else math.nan
            row[f"fde@{h:g}s"] = float(e[:, k].mean()) if n else math.nan
        last = horizons_s[-1]
        row[f"yaw@{last:g}s"] = (
            float(yaw[sel][:, -1].abs().mean() * 180 / math.pi) if n else math.nan
        )
        out[name] = row
    return out
