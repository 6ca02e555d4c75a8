"""Trajectory baselines from past poses alone: constant velocity and constant turn rate."""

from __future__ import annotations

import torch

__all__ = ["constant_turn_rate", "constant_velocity"]


def _velocity(past: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity ``[B, 2]`` (ego frame) and yaw rate ``[B]`` over the last past interval."""
    last = past[:, -1]  # the pose ``dt`` before now, in the current ego frame
    vel = -last[:, :2] / dt  # now is the origin
    rate = -last[:, 2] / dt
    return vel, rate


def constant_velocity(past: torch.Tensor, dt: float, horizons_s: tuple[float, ...]) -> torch.Tensor:
    """Straight-line extrapolation of the last ``dt`` seconds' displacement.

    Args:
        past: ``[B, P, 3]`` past poses in the current ego frame, oldest first; the last one
            is ``dt`` seconds before now.
        dt: Seconds between the last past pose and now.
        horizons_s: Future times.

    Returns:
        ``[B, K, 3]``: positions along the velocity, yaw unchanged (0).
    """
    vel, _ = _velocity(past, dt)
    h = torch.tensor(horizons_s, dtype=past.dtype, device=past.device)  # [K]
    xy = vel[:, None, :] * h[None, :, None]  # [B, K, 2]
    return torch.cat([xy, torch.zeros_like(xy[..., :1])], dim=-1)


def constant_turn_rate(
    past: torch.Tensor, dt: float, horizons_s: tuple[float, ...]
) -> torch.Tensor:
    """Constant speed and yaw rate (CTRV) from the last ``dt`` seconds: arcs, not lines."""
    vel, rate = _velocity(past, dt)
    speed = vel.norm(dim=1)  # [B]
    h = torch.tensor(horizons_s, dtype=past.dtype, device=past.device)[None]  # [1, K]
    yaw = rate[:, None] * h  # [B, K]
    r = rate[:, None]
    small = r.abs() < 1e-4
    safe = torch.where(small, torch.ones_like(r), r)
    x = torch.where(small, speed[:, None] * h, speed[:, None] * torch.sin(yaw) / safe)
    y = torch.where(
        small, 0.5 * speed[:, None] * r * h * h, speed[:, None] * (1 - torch.cos(yaw)) / safe
    )
    return torch.stack([x, y, yaw], dim=-1)
