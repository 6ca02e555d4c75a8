"""Validation of query points, shared by every tracker."""

from __future__ import annotations

import numpy as np

from rvm_ros.errors import check_size

__all__ = ["MAX_QUERY_POINTS", "MAX_TRACKED_POINTS", "check_queries", "check_query_count"]

#: Most points a user may ask one camera to track (``~/set_query_points``, in total).
MAX_QUERY_POINTS = 4096
#: Most points one tracker holds: the user's, an automatic grid (64 x 64) and corners.
MAX_TRACKED_POINTS = MAX_QUERY_POINTS + 64 * 64 + 4096
#: Memory estimate per tracked point (appearance template, pyramid windows, history).
BYTES_PER_POINT = 64 * 1024


def check_query_count(count: int, most: int = MAX_QUERY_POINTS, what: str = "query points") -> int:
    """Refuse ``count`` points above ``most`` (`rvm_ros.errors.TooLarge`, a ValueError)."""
    return check_size(
        what,
        int(count),
        most=most,
        bytes_each=BYTES_PER_POINT,
        hint="track fewer points (each costs tracker time on every frame)",
    )


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
        TooLarge: more than `MAX_TRACKED_POINTS` points in all (a ValueError).
        ValueError: wrong shapes, non-integer / duplicate / used / out-of-int32 ids,
            non-finite or out-of-range positions.
    """
    check_query_count(len(used) + len(xy), MAX_TRACKED_POINTS, "tracked points")
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
