"""Sparse affinities of label propagation: which context cells a target cell draws from.

Similarities are cosines of L2-normalised features (one product through torch); a
neighbourhood ``radius`` excludes far pairs (``-inf``); each target cell keeps its
``topk`` largest and weights them by ``softmax(similarity / temperature)``.

Ties: the top-k is ordered by similarity, equal similarities going to the smaller
tie-break key (the earlier context frame, then the lower cell), so the result does not
depend on how the context columns are split into pieces or on the order a selection
algorithm visits equal values.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reach_penalty", "similarities", "topk_candidates", "topk_weights"]


def similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` for float32 ``[m, C]``, ``[n, C]`` -> ``[m, n]``.

    Through torch, like the big product, so that a single BLAS thread pool runs (two pools
    spinning against each other on few cores cost more than the products themselves).
    """
    import torch

    return torch.matmul(torch.from_numpy(a), torch.from_numpy(b).T).numpy()


def reach_penalty(h: int, w: int, radius: float) -> np.ndarray | None:
    """float32 ``[N, N]`` (N = h*w): ``-inf`` where the centres of cells i and j lie more
    than ``radius`` cells apart (Euclidean), else 0; ``None`` when no pair does.
    Symmetric."""
    rows, cols = np.divmod(np.arange(h * w), w)
    d2 = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2
    far = d2 > radius**2
    return np.where(far, -np.inf, 0.0).astype(np.float32) if far.any() else None


def topk_candidates(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The columns of ``sims`` ``[R, m]`` that can make a row's top-k.

    Returns:
        ``(values [R, kk], columns [R, kk], unsure [R])`` with ``kk = min(m, k + 1)``: the
        ``k + 1`` largest per row (unordered; all columns when ``m <= k + 1``). The extra
        one tells whether values equal to the k-th largest were cut off (``unsure``;
        ``-inf`` ties do not count, their weight is 0): when not, the row's top-k under
        any tie order is among the returned columns, and merging pieces never picks a
        piece's extra one (it would need all k above it too).
    """
    rows, m = sims.shape
    if m <= k + 1:
        return sims, np.broadcast_to(np.arange(m), (rows, m)), np.zeros(rows, dtype=bool)
    idx = np.argpartition(sims, m - k - 1, axis=1)[:, m - k - 1 :]  # [R, k+1]
    v = np.take_along_axis(sims, idx, axis=1)
    two = np.partition(v, 1, axis=1)[:, :2]  # [(k+1)-th, k-th] largest
    unsure = (two[:, 0] == two[:, 1]) & np.isfinite(two[:, 1])
    return v, idx, unsure


def topk_weights(
    pieces: list[tuple[np.ndarray, int, np.ndarray]],
    k: int,
    temperature: float,
    candidates: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k softmax weights of target rows over context columns split into pieces.

    The top-k is ordered by similarity, ties going to the smaller key (the earlier
    frame, then the lower cell), so the result does not depend on how the columns are
    split or on the order a selection algorithm visits equal values.

    Args:
        pieces: ``(sims [R, m], first label row, keys [m])`` per piece: similarities
            (``-inf`` out of reach), the row of ``labels`` that column 0 stands for
            (columns are consecutive rows), and each column's tie-break key.
        k: entries to keep (at most the total number of columns).
        temperature: softmax temperature on the similarities.
        candidates: ``(values, label rows, keys, unsure)`` (``[R, M]`` x3, ``[R]``)
            already picked from the pieces as :func:`topk_candidates` does (each piece's
            top-k among them); computed from ``pieces`` when ``None``.

    Returns:
        ``(label rows [R, k], weights [R, k])``.
    """
    if candidates is None:
        vals, rows, keys = [], [], []
        unsure = np.zeros(pieces[0][0].shape[0], dtype=bool)  # [R] rows with cut-off ties
        for sims, first, key in pieces:
            v_p, i_p, u_p = topk_candidates(sims, k)
            vals.append(v_p)
            rows.append(i_p + first)
            keys.append(key[i_p])
            unsure |= u_p
        candidates = (
            np.concatenate(vals, axis=1),
            np.concatenate(rows, axis=1),
            np.concatenate(keys, axis=1),
            unsure,
        )
    v, r, key_v, unsure = candidates  # [R, M] x3, [R]
    order = np.lexsort((key_v, -v), axis=1)[:, :k]  # [R, k]
    top_sims = np.take_along_axis(v, order, axis=1)
    top = np.take_along_axis(r, order, axis=1)
    for row in np.flatnonzero(unsure).tolist():  # rare: exact ties (duplicated features)
        row_v = np.concatenate([p[row] for p, _, _ in pieces])
        row_r = np.concatenate([f + np.arange(p.shape[1]) for p, f, _ in pieces])
        row_o = np.lexsort((np.concatenate([key for _, _, key in pieces]), -row_v))[:k]
        top_sims[row], top[row] = row_v[row_o], row_r[row_o]
    # A cell's own position is always within reach, so every row has a finite max.
    logits = (top_sims - top_sims[:, :1]) / temperature
    weights = np.exp(logits)  # exp(-inf) = 0 for out-of-reach entries
    weights /= weights.sum(axis=1, keepdims=True)  # [R, k]
    return top, weights
