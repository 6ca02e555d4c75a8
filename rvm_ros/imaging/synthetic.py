"""Deterministic synthetic camera frames (tests, benchmarks, quantisation calibration)."""

from __future__ import annotations

import numpy as np


def synthetic_frames(
    count: int, cameras: int, height: int, width: int, seed: int = 0
) -> np.ndarray:
    """Deterministic moving test frames ``uint8 [count, cameras, H, W, 3]``.

    A random texture per camera, shifted by a few pixels per frame (so the recurrent state
    sees motion), plus a little per-frame noise.
    """
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(cameras, height * 2, width * 2, 3), dtype=np.uint8)
    out = np.empty((count, cameras, height, width, 3), dtype=np.uint8)
    for t in range(count):
        dy, dx = (3 * t) % height, (5 * t) % width
        out[t] = base[:, dy : dy + height, dx : dx + width]
        noise = rng.integers(-8, 9, size=out[t].shape)
        out[t] = np.clip(out[t].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return out
