"""Sinusoid position tables and the jax-style antialiased bicubic resize.

Everything here is computed in float64 numpy (deterministic, no tensor ops), so a
table for a given grid is a plain constant: tracing ``RVM.step`` for ONNX export bakes
it into the graph.
"""

from __future__ import annotations

import functools

import numpy as np


def sinusoid_table(num_positions: int, dim: int) -> np.ndarray:
    """The MAE 1-D sinusoid position table.

    ``angle[pos, j] = pos / 10000 ** (2 * (j // 2) / dim)``; even channels hold
    ``sin(angle)``, odd channels ``cos(angle)``.

    Args:
        num_positions: Number of positions n.
        dim: Number of channels D.

    Returns:
        float64 array ``[n, D]``.
    """
    if num_positions <= 0 or dim <= 0:
        raise ValueError(f"sinusoid_table needs positive sizes, got n={num_positions} D={dim}")
    pos = np.arange(num_positions, dtype=np.float64)[:, None]  # [n, 1]
    j = np.arange(dim)
    inv_freq = 1.0 / (10000.0 ** (2.0 * (j // 2) / dim))  # [D]
    angle = pos * inv_freq[None, :]  # [n, D]
    return np.where(j % 2 == 0, np.sin(angle), np.cos(angle))


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5, evaluated at |x|."""
    x = np.abs(x)
    near = (1.5 * x - 2.5) * x * x + 1.0  # |x| < 1
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0  # 1 <= |x| < 2
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@functools.lru_cache(maxsize=64)
def _resize_matrix_cached(in_size: int, out_size: int) -> np.ndarray:
    scale = out_size / in_size
    # Output sample centres in input coordinates (half-pixel centres).
    centres = (np.arange(out_size, dtype=np.float64) + 0.5) / scale - 0.5  # [out]
    # Antialiasing: when downsampling, widen the kernel by 1 / scale.
    widen = max(1.0 / scale, 1.0)
    dist = np.abs(centres[:, None] - np.arange(in_size, dtype=np.float64)[None, :]) / widen
    weights = _keys_cubic(dist)  # [out, in]
    total = weights.sum(axis=1, keepdims=True)
    eps = 1000.0 * float(np.finfo(np.float32).eps)
    safe = np.where(total != 0.0, total, 1.0)
    weights = np.where(np.abs(total) > eps, weights / safe, 0.0)
    inside = (centres >= -0.5) & (centres <= in_size - 0.5)
    weights = np.where(inside[:, None], weights, 0.0)
    weights.setflags(write=False)
    return weights


def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """1-D resize weights of ``jax.image.resize(method='bicubic')`` (antialiased).

    Keys cubic kernel (a = -0.5), half-pixel centres, weights renormalised to sum to 1
    at the edges, kernel widened by the scale when downsampling.

    Args:
        in_size: Input length.
        out_size: Output length.

    Returns:
        float64 matrix ``[out_size, in_size]`` (read-only); ``out = M @ in``.
    """
    if in_size <= 0 or out_size <= 0:
        raise ValueError(f"resize sizes must be positive, got {in_size} -> {out_size}")
    return _resize_matrix_cached(in_size, out_size)


def resize_grid(table: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize a ``[gh, gw, C]`` grid to ``[out_h, out_w, C]`` (jax-style bicubic)."""
    gh, gw, _ = table.shape
    if (gh, gw) == (out_h, out_w):
        copy: np.ndarray = table.copy()
        return copy
    rows = resize_matrix(gh, out_h)  # [out_h, gh]
    cols = resize_matrix(gw, out_w)  # [out_w, gw]
    out = np.einsum("ih,hwc->iwc", rows, table)  # [out_h, gw, C]
    resized: np.ndarray = np.einsum("jw,iwc->ijc", cols, out)  # [out_h, out_w, C]
    return resized


@functools.lru_cache(maxsize=64)
def _grid_table_cached(dim: int, pos_grid: int, h: int, w: int) -> np.ndarray:
    table = sinusoid_table(pos_grid * pos_grid, dim).reshape(pos_grid, pos_grid, dim)
    out = resize_grid(table, h, w).reshape(h * w, dim).astype(np.float32)
    out.setflags(write=False)
    return out


def grid_position_table(dim: int, pos_grid: int, h: int, w: int) -> np.ndarray:
    """Encoder position table for an ``h x w`` token grid.

    The sinusoid table for ``pos_grid**2`` positions, laid out as a ``pos_grid`` square,
    resized to ``(h, w)`` when the grid differs.

    Returns:
        float32 ``[h*w, dim]`` (read-only), row-major over the grid.
    """
    return _grid_table_cached(dim, pos_grid, h, w)
