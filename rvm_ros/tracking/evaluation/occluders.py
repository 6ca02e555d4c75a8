"""The benchmark's ``occluder`` split: shapes cut from other real images cross the view.

Each occluder (an ellipse or a polygon) moves in a straight line through a random place
near the middle of the view, at a random speed, spinning slowly; a point under one is not
visible.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig
from rvm_ros.tracking.evaluation.sources import Source

__all__ = ["occluder_layer"]


def occluder_layer(
    rng: np.random.Generator,
    cfg: BenchmarkConfig,
    sources: list[Source],
    scene: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Occluder layer per frame: ``(rgb [T, H, W, 3] uint8, mask [T, H, W] bool)``."""
    num_t, h, w = cfg.num_frames, cfg.height, cfg.width
    rgb = np.zeros((num_t, h, w, 3), np.uint8)
    mask = np.zeros((num_t, h, w), bool)
    count = int(rng.integers(cfg.occluders[0], cfg.occluders[1] + 1))
    others = [i for i in range(len(sources)) if i != scene]
    unit = max(h, w) / 256.0
    for _ in range(count):
        src = sources[int(rng.choice(others))][1]
        size = int(rng.uniform(0.18, 0.4) * min(h, w))
        sy = int(rng.integers(0, max(1, src.shape[0] - size)))
        sx = int(rng.integers(0, max(1, src.shape[1] - size)))
        patch = src[sy : sy + size, sx : sx + size]
        if patch.shape[:2] != (size, size):
            patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
        shape = np.zeros((size, size), np.uint8)
        centre = (size // 2, size // 2)
        if rng.uniform() < 0.5:
            axes = (int(size * rng.uniform(0.3, 0.5)), int(size * rng.uniform(0.3, 0.5)))
            cv2.ellipse(shape, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * math.pi, n))
            rad = size * rng.uniform(0.3, 0.5, n)
            poly = np.stack([centre[0] + rad * np.cos(ang), centre[1] + rad * np.sin(ang)], 1)
            cv2.fillPoly(shape, [np.round(poly).astype(np.int32)], 1)
        # Straight path through a random place near the middle, at a random speed.
        through = np.array([w, h]) * rng.uniform(0.25, 0.75, 2)
        direction = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(1.5, 6.0) * unit
        vel = speed * np.array([math.cos(direction), math.sin(direction)])
        t_mid = rng.uniform(0.2, 0.8) * (num_t - 1)
        spin = math.radians(rng.uniform(-2.0, 2.0))
        for i in range(num_t):
            pos = through + vel * (i - t_mid)
            m = cv2.getRotationMatrix2D(
                (size / 2 - 0.5, size / 2 - 0.5), math.degrees(spin * i), 1.0
            )
            m[:, 2] += np.asarray(pos - size / 2, dtype=np.float64)
            warped = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR)
            wmask = cv2.warpAffine(shape, m, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
            rgb[i][wmask] = warped[wmask]
            mask[i] |= wmask
    return rgb, mask
