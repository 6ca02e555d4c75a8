"""The ego vehicle's path: a smooth road in arc length and a speed profile in time.

The road is a curvature profile ``kappa(s)`` (straights and turns of 20-45 m radius joined
by smoothed transitions), integrated on a fine arc-length grid into ``x, y, heading``; the
speed ``v(t)`` alternates cruising at changing speeds with full stops. The ego pose at time
``t`` is the road at ``s(t) = integral of v``, linearly interpolated on the grid: this *is*
the ground truth (the renderer and the odometry use the same function), so nothing is
approximated between the pictures and the poses.

Heading stays within +-80 degrees of the start, so the road never crosses itself and the
scene placed along it never blocks a later part of the drive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DS", "VehiclePath", "make_path"]

#: Arc-length grid step of the road (m).
DS = 0.05
#: Road before the start and after the end of the drive (m): room for the scene.
MARGIN_M = 150.0
_MAX_HEADING = math.radians(80.0)


def _gauss_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing (``sigma`` in samples), edges held."""
    if sigma <= 0:
        return values
    r = int(3 * sigma) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(values, r, mode="edge")
    return np.convolve(padded, k, mode="valid")


@dataclass(frozen=True, eq=False)
class VehiclePath:
    """A road (arc-length grid) and the ego's progress along it (time grid).

    Attributes:
        s: ``[M]`` arc length of the road grid (m), from ``-MARGIN_M``.
        xy: ``[M, 2]`` road centre in the world (odom) frame (m).
        heading: ``[M]`` road heading (rad, counter-clockwise from +x).
        t: ``[T]`` time grid of the drive (s), from 0.
        s_of_t: ``[T]`` ego arc length at ``t``.
        v_of_t: ``[T]`` ego speed (m/s).
    """

    s: np.ndarray
    xy: np.ndarray
    heading: np.ndarray
    t: np.ndarray
    s_of_t: np.ndarray
    v_of_t: np.ndarray

    @property
    def duration(self) -> float:
        """Length of the drive (s)."""
        return float(self.t[-1])

    def road_at(self, s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """``(xy [..., 2], heading [...])`` of the road at arc length ``s`` (interpolated)."""
        sa = np.asarray(s, dtype=np.float64)
        x = np.interp(sa, self.s, self.xy[:, 0])
        y = np.interp(sa, self.s, self.xy[:, 1])
        h = np.interp(sa, self.s, self.heading)
        return np.stack([x, y], axis=-1), h

    def arc_at(self, t: np.ndarray | float) -> np.ndarray:
        """Ego arc length at time ``t`` (held before 0 and after the end)."""
        return np.asarray(np.interp(np.asarray(t, np.float64), self.t, self.s_of_t))

    def speed_at(self, t: np.ndarray | float) -> np.ndarray:
        """Ego speed (m/s) at time ``t``."""
        return np.asarray(np.interp(np.asarray(t, np.float64), self.t, self.v_of_t))

    def pose_at(self, t: float) -> tuple[float, float, float]:
        """Ego ``(x, y, yaw)`` in the world frame at time ``t``."""
        xy, h = self.road_at(self.arc_at(t))
        return float(xy[0]), float(xy[1]), float(h)

    def base_to_world(self, t: float) -> np.ndarray:
        """``[4, 4]`` base_link -> odom at time ``t`` (base on the ground, z up)."""
        x, y, yaw = self.pose_at(t)
        c, s = math.cos(yaw), math.sin(yaw)
        out = np.eye(4)
        out[:2, :2] = [[c, -s], [s, c]]
        out[:2, 3] = (x, y)
        return out

    def yaw_rate_at(self, t: float) -> float:
        """Ego yaw rate (rad/s): road curvature times speed."""
        s = float(self.arc_at(t))
        i = int(np.clip(np.searchsorted(self.s, s), 1, self.s.size - 1))
        kappa = (self.heading[i] - self.heading[i - 1]) / (self.s[i] - self.s[i - 1])
        return float(kappa * self.speed_at(t))


def _curvature(rng: np.random.Generator, length: float) -> np.ndarray:
    """``kappa`` on the arc-length grid: straights and turns (heading kept within +-80 deg)."""
    n = math.ceil((length + 2 * MARGIN_M) / DS) + 1
    kappa = np.zeros(n)
    pos = int((MARGIN_M + rng.uniform(10.0, 40.0)) / DS)  # first turn after a straight start
    heading = 0.0
    while pos < n:
        radius = rng.uniform(20.0, 45.0)
        angle = math.radians(rng.uniform(25.0, 75.0))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if abs(heading + sign * angle) > _MAX_HEADING:
            sign = -sign
        if abs(heading + sign * angle) > _MAX_HEADING:
            angle = max(0.0, _MAX_HEADING - abs(heading))
        steps = int(angle * radius / DS)
        kappa[pos : pos + steps] = sign / radius
        heading += sign * steps * DS / radius
        pos += steps + int(rng.uniform(25.0, 80.0) / DS)
    # Transitions (clothoid-like): smoothing keeps each turn's total angle.
    return _gauss_smooth(kappa, 4.0 / DS / 2)


def _speed(rng: np.random.Generator, duration: float, dt: float, max_speed: float) -> np.ndarray:
    """Speed on the time grid: cruise at changing speeds, full stops, smooth accelerations."""
    n = round(duration / dt) + 1
    target = np.empty(n)
    i = 0
    stopped = rng.random() < 0.3  # some drives start standing
    while i < n:
        if stopped:
            hold = rng.uniform(2.0, 4.0)
            target[i : i + int(hold / dt)] = 0.0
            i += int(hold / dt)
            stopped = False
            continue
        cruise = rng.uniform(3.0, 7.0)
        target[i : i + int(cruise / dt)] = rng.uniform(0.35, 1.0) * max_speed
        i += int(cruise / dt)
        stopped = rng.random() < 0.45
    # Acceleration limit (2.5 m/s^2 up, 3.5 down), then smoothed (jerk-limited).
    v = np.empty(n)
    v[0] = target[0]
    for k in range(1, n):
        dv = np.clip(target[k] - v[k - 1], -3.5 * dt, 2.5 * dt)
        v[k] = v[k - 1] + dv
    v = _gauss_smooth(v, 0.4 / dt)
    v[v < 0.005] = 0.0  # a stop is a stop
    return v


def make_path(
    rng: np.random.Generator, duration: float, dt: float, max_speed: float = 12.0
) -> VehiclePath:
    """A random road and drive of ``duration`` seconds on a time grid of step ``dt``."""
    v = _speed(rng, duration, dt, max_speed)
    s_of_t = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * dt)])
    length = float(s_of_t[-1])
    kappa = _curvature(rng, length)
    s = -MARGIN_M + DS * np.arange(kappa.size)
    heading = np.concatenate([[0.0], np.cumsum(0.5 * (kappa[1:] + kappa[:-1]) * DS)])
    start = round(MARGIN_M / DS)
    heading -= heading[start]
    step = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    xy = np.concatenate([[[0.0, 0.0]], np.cumsum(0.5 * (step[1:] + step[:-1]) * DS, axis=0)])
    xy -= xy[start]
    t = dt * np.arange(v.size)
    return VehiclePath(s, xy, heading, t, s_of_t, v)
