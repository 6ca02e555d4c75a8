"""Validation of query points, shared by every tracker."""

from __future__ import annotations

import numpy as np

__all__ = ["check_queries"]


def check_queries(
    xy: np.ndarray,
    ids: np.ndarray,
    used: set[int] | dict[int, object],
    size: tuple[float, float] | None,
    space: str = "image",
) -> tuple[np.ndarray, list[int]]:
    """Validated ``(xy float64 [P, 2], ids)`` of new queries.

    Args:
        xy: ``[P, 2]`` positions.
        ids: ``[P]`` integer ids.
        used: ids already in use.
        size: ``(height, width)`` that positions must lie within, when known.
        space: What positions are measured in, for messages (``image`` pixels, ``grid`` cells).

    Raises:
        ValueError: wrong shapes, non-integer / duplicate / used / out-of-int32 ids,
            non-finite or out-of-range positions.
    """
    pts = np.asarray(xy, dtype=np.float64)
    ids_arr = np.asarray(ids)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"add_queries: xy must have shape [P, 2], got {pts.shape}")
    if ids_arr.shape != (pts.shape[0],):
        raise ValueError(
            f"add_queries: ids must have shape ({pts.shape[0]},) to match xy, got {ids_arr.shape}"
        )
    if ids_arr.size and not np.issubdtype(ids_arr.dtype, np.integer):
        raise ValueError(f"add_queries: ids must be integers, got dtype {ids_arr.dtype}")
    if ids_arr.size and (ids_arr.min() < -(2**31) or ids_arr.max() >= 2**31):
        raise ValueError("add_queries: ids must fit in int32")
    ids_list = [int(i) for i in ids_arr]
    if len(set(ids_list)) != len(ids_list):
        dup = sorted({i for i in ids_list if ids_list.count(i) > 1})
        raise ValueError(f"add_queries: duplicate ids {dup}")
    clash = sorted(i for i in ids_list if i in used)
    if clash:
        raise ValueError(f"add_queries: ids {clash} are already tracked")
    bad = ~np.isfinite(pts).all(axis=1) | (pts < 0).any(axis=1)
    if size is not None:
        bad |= (pts[:, 0] > size[1]) | (pts[:, 1] > size[0])
    if bad.any():
        where = f"the {size[1]:g}x{size[0]:g} {space}" if size else f"the {space}"
        ex = [(ids_list[i], pts[i].tolist()) for i in np.flatnonzero(bad)[:5]]
        raise ValueError(f"add_queries: query points outside {where} (id, xy): {ex}")
    return pts, ids_list
