"""Label maps of label propagation: a point drawn as a heatmap, and read back off one.

Coordinates are feature-grid cells: ``x`` to the right, ``y`` down, cell ``(r, c)``
covers ``[c, c+1) x [r, r+1)`` with its centre at ``(c + 0.5, r + 0.5)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gaussian_labels", "soft_argmax"]

_WINDOW = 1  # soft-argmax window half-size in cells (3x3 around the heatmap's argmax)
_EPS = 1e-12


def gaussian_labels(xy: np.ndarray, h: int, w: int, sigma: float, peaks: np.ndarray) -> np.ndarray:
    """Gaussian label maps of points on an ``h x w`` grid.

    Args:
        xy: float32 ``[P, 2]`` positions ``(x, y)`` in grid cells.
        h: grid rows.
        w: grid columns.
        sigma: standard deviation of the Gaussian in cells.
        peaks: float32 ``[P]`` value of each map's maximum (0 gives an all-zero map).

    Returns:
        ``[N, P]`` (N = h*w, row-major cells) label maps.
    """
    n = h * w
    rows, cols = np.divmod(np.arange(n), w)
    dx = (cols + 0.5)[:, None] - xy[None, :, 0]  # [N, P]
    dy = (rows + 0.5)[:, None] - xy[None, :, 1]  # [N, P]
    labels: np.ndarray = np.exp(-(dx * dx + dy * dy) / (2.0 * sigma**2))  # [N, P]
    labels = labels / np.maximum(labels.max(axis=0, keepdims=True), _EPS) * peaks[None, :]
    return labels


def soft_argmax(heat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read each heatmap's position: the argmax cell, refined by the heat-weighted mean of
    the cell centres in the 3x3-cell window around it.

    Args:
        heat: ``[h, w, P]`` heatmaps (cells outside the grid count as zero heat).

    Returns:
        ``(xy, peak, found)``: float32 ``[P, 2]`` positions ``(x, y)`` in grid cells;
        ``[P]`` the heatmap maxima; bool ``[P]`` whether the window holds any heat (the
        position is meaningless where it does not).
    """
    h, w, pg = heat.shape
    flat = heat.reshape(h * w, pg)
    peak_cell = flat.argmax(axis=0)  # [P]
    peak = flat[peak_cell, np.arange(pg)]  # [P]
    r0, c0 = np.divmod(peak_cell, w)
    offsets = np.arange(-_WINDOW, _WINDOW + 1)
    rows = r0[:, None] + offsets[None, :]  # [P, 3]
    cols = c0[:, None] + offsets[None, :]  # [P, 3]
    padded = np.pad(heat, ((_WINDOW, _WINDOW), (_WINDOW, _WINDOW), (0, 0)))
    window = padded[
        rows[:, :, None] + _WINDOW, cols[:, None, :] + _WINDOW, np.arange(pg)[:, None, None]
    ]  # [P, 3, 3], zero outside the grid
    mass = window.sum(axis=(1, 2))  # [P]
    safe = np.maximum(mass, _EPS)
    x = (window.sum(axis=1) * (cols + 0.5)).sum(axis=1) / safe  # [P]
    y = (window.sum(axis=2) * (rows + 0.5)).sum(axis=1) / safe  # [P]
    xy = np.stack([x, y], axis=1).astype(np.float32)  # [P, 2]
    return xy, peak, mass > _EPS
