"""Target masking: which patches of a target frame stay visible."""

from __future__ import annotations

import numpy as np


def num_visible(num_patches: int, keep_ratio: float = 0.05) -> int:
    """Visible patches per target: ``int(num_patches * keep_ratio)``, at least 1.

    Args:
        num_patches: Patches of the target grid (h*w).
        keep_ratio: Fraction kept (the paper masks 95 %).

    Raises:
        ValueError: For a non-positive patch count or a ratio outside (0, 1).
    """
    if num_patches <= 0:
        raise ValueError(f"num_visible: num_patches must be positive, got {num_patches}")
    if not 0.0 < keep_ratio < 1.0:
        raise ValueError(f"num_visible: keep_ratio must be in (0, 1), got {keep_ratio}")
    return max(1, int(num_patches * keep_ratio))


def sample_visible(rng: np.random.Generator, num_patches: int, keep: int) -> np.ndarray:
    """``keep`` distinct row-major patch indices drawn uniformly, sorted (int64 ``[keep]``)."""
    if not 0 < keep < num_patches:
        raise ValueError(f"sample_visible: need 0 < keep < {num_patches}, got {keep}")
    return np.sort(rng.choice(num_patches, size=keep, replace=False)).astype(np.int64)
