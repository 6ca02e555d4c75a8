"""Motion prior from the reliably tracked points: where a hidden point has gone.

The frame-to-frame motion of the points that Lucas-Kanade tracked with a small
forward-backward error is summarised as a homography (RANSAC, at least 8 such points),
else their median translation, else no motion. Points that are hidden, out of view or
lost follow it, so they are looked for in the right place when they come back.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["apply_motion", "fit_motion"]

_MIN_HOMOGRAPHY = 8


def fit_motion(src: np.ndarray, dst: np.ndarray, threshold: float) -> tuple[np.ndarray, bool]:
    """``(float64 [3, 3] homography, solid)`` taking ``src`` ``[N, 2]`` to ``dst``.

    ``solid``: a homography supported by at least 8 points and half of them.
    """
    n = src.shape[0]
    if n >= _MIN_HOMOGRAPHY:
        hom, inliers = cv2.findHomography(
            src.astype(np.float32),
            dst.astype(np.float32),
            cv2.RANSAC,
            threshold,
            maxIters=200,
            confidence=0.99,
        )
        if hom is not None and np.isfinite(hom).all() and int(inliers.sum()) >= _MIN_HOMOGRAPHY:
            return np.asarray(hom, dtype=np.float64), 2 * int(inliers.sum()) >= n
    out = np.eye(3)
    if n >= 1:
        out[:2, 2] = np.median(dst - src, axis=0)
    return out, False


def apply_motion(hom: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``xy`` ``[P, 2]`` through the homography (float32; points at infinity stay put)."""
    p = xy.astype(np.float64) @ hom[:2, :2].T + hom[:2, 2]
    d = xy.astype(np.float64) @ hom[2, :2] + hom[2, 2]
    ok = np.abs(d) > 1e-9
    out = np.where(ok[:, None], p / np.where(ok, d, 1.0)[:, None], xy)
    return np.asarray(out, dtype=np.float32)
