"""Finding tracked points again from their RVM features alone (``hybrid``'s
``feature_relocalise``): after a reset, or when too few points were tracked to estimate the
frame's motion."""

from __future__ import annotations

import cv2
import numpy as np

from rvm_ros.tracking.motion import apply_motion

__all__ = ["RELOCALISE_CELLS", "RELOCALISE_MIN", "relocalise"]

RELOCALISE_MIN = 6
"""Matches that must agree on one motion."""

RELOCALISE_CELLS = 0.75
"""RANSAC inlier distance in feature cells."""


def relocalise(
    features: np.ndarray,
    prev_xy: np.ndarray,
    rows: np.ndarray,
    point_features: tuple[np.ndarray, np.ndarray],
    cells: tuple[np.ndarray, np.ndarray],
) -> np.ndarray | None:
    """Where the points are now ``[P, 2]``, from their RVM features alone, or None.

    The query and latest confirmed features of points ``rows`` (those that were visible)
    are compared (cosine) with every cell of the frame's feature grid; each one's best
    cell is a match, and a similarity transform (rotation, scale, translation) fitted to
    the matches by RANSAC (inliers within :data:`RELOCALISE_CELLS` cells) carries every
    point's last estimate into the frame. None when fewer than :data:`RELOCALISE_MIN`
    points agree on one motion: nothing is moved then.

    Args:
        features: float32 ``[h, w, C]`` frame-centred feature grid of the frame.
        prev_xy: float32 ``[P, 2]`` last estimates (OpenCV coordinates of the tracking
            image).
        rows: int ``[S]`` the points to match.
        point_features: ``(query, latest)`` float32 ``[P, C]`` normalised features.
        cells: ``(k, c)`` float64 ``[2]``: tracking-image OpenCV coordinate ``xy`` lies at
            feature-grid coordinate ``k * xy + c - 0.5``.
    """
    if rows.size < RELOCALISE_MIN:
        return None
    qfeat, rfeat = point_features
    cell_k, cell_c = cells
    _gh, gw, c = features.shape
    grid = features.reshape(-1, c).astype(np.float32)  # [h*w, C]
    grid /= np.maximum(np.linalg.norm(grid, axis=1, keepdims=True), 1e-6)
    sim = np.maximum(qfeat[rows] @ grid.T, rfeat[rows] @ grid.T)  # [S, h*w]
    best = np.argmax(sim, axis=1)
    cell_x, cell_y = 1.0 / cell_k[0], 1.0 / cell_k[1]
    # cell centres in OpenCV coordinates of the tracking image
    dst = np.stack(
        [
            (best % gw + 0.5 - cell_c[0]) * cell_x,
            (best // gw + 0.5 - cell_c[1]) * cell_y,
        ],
        axis=1,
    ).astype(np.float32)
    model, inliers = cv2.estimateAffinePartial2D(
        prev_xy[rows].astype(np.float32),
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=RELOCALISE_CELLS * max(cell_x, cell_y),
        maxIters=500,
        confidence=0.99,
    )
    if model is None or inliers is None or int(inliers.sum()) < RELOCALISE_MIN:
        return None
    hom = np.vstack([model, [0.0, 0.0, 1.0]])
    return apply_motion(hom, prev_xy)
