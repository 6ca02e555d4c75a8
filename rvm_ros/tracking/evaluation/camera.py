"""The benchmark's virtual camera: a smooth random homography path over a real image.

Each sequence is one real still image seen through a virtual camera that moves along a
random smooth homography path (translation, rotation, scale, mild perspective). Because
every frame is a warp of the same source, the position of any query point in any frame is
known exactly: it is the same source point mapped through that frame's homography. Half
the query points sit on textured places (Shi-Tomasi corners of frame 0), half are drawn
uniformly at random.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig

__all__ = [
    "apply_homography",
    "camera_ground_truth",
    "camera_path",
    "in_view",
    "pixel_of",
    "prepare_source",
    "query_points",
    "smooth",
]


def smooth(rng: np.random.Generator, t: np.ndarray, terms: int = 2) -> np.ndarray:
    """A smooth random function of ``t`` in [0, 1], 0 at t=0, within about [-1, 1]."""
    out = np.zeros_like(t)
    for k in range(terms):
        freq = rng.uniform(0.3, 1.2) * (k + 1)
        phase = rng.uniform(0, 2 * math.pi)
        out += (
            rng.uniform(0.3, 1.0)
            / (k + 1)
            * (np.sin(2 * math.pi * freq * t + phase) - math.sin(phase))
        )
    return out / 1.5


def camera_path(
    rng: np.random.Generator, cfg: BenchmarkConfig, src_hw: tuple[int, int]
) -> np.ndarray:
    """float64 ``[T, 3, 3]``: per frame the homography from view pixels to source pixels
    (OpenCV pixel coordinates, centre of pixel 0 at 0)."""
    num_t, h, w = cfg.num_frames, cfg.height, cfg.width
    sh, sw = src_hw
    t = np.linspace(0.0, 1.0, num_t)
    unit = max(h, w) / 256.0
    # Translation: integrate a smoothly varying velocity.
    speed = cfg.max_speed * unit * rng.uniform(0.35, 1.0)
    heading = rng.uniform(0, 2 * math.pi) + 1.5 * smooth(rng, t)
    gain = 1.0 + 0.6 * smooth(rng, t)
    vel = (
        np.stack([np.cos(heading), np.sin(heading)], axis=1)
        * (speed * np.clip(gain, 0.3, 1.6))[:, None]
    )
    offset = np.concatenate([[[0.0, 0.0]], np.cumsum(vel[1:], axis=0)])  # [T, 2]
    rot = math.radians(cfg.max_rotation_deg) * rng.uniform(-1, 1) * smooth(rng, t)
    zoom = math.log(cfg.max_zoom) * rng.uniform(-1, 1) * smooth(rng, t)
    persp = cfg.perspective * rng.uniform(-1, 1, size=2)[None, :] * smooth(rng, t, 1)[:, None]
    # Keep the whole path's view centre inside the source: start where the path fits.
    lo = offset.min(axis=0)
    hi = offset.max(axis=0)
    margin = np.array([w, h]) * 0.5 * cfg.max_zoom
    low = margin - lo
    high = np.array([sw, sh]) - margin - hi
    start = np.where(high > low, rng.uniform(0, 1, 2) * (high - low) + low, (low + high) / 2)
    centres = start[None, :] + offset  # [T, 2] source position of the view centre
    vc = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    out = np.empty((num_t, 3, 3))
    for i in range(num_t):
        c, s = math.cos(rot[i]), math.sin(rot[i])
        scale = math.exp(zoom[i])
        a = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        a[:2, :2] *= scale
        a[2, :2] = persp[i] / np.array([w, h])
        to_centre = np.array([[1.0, 0.0, -vc[0]], [0.0, 1.0, -vc[1]], [0.0, 0.0, 1.0]])
        to_src = np.array([[1.0, 0.0, centres[i, 0]], [0.0, 1.0, centres[i, 1]], [0.0, 0.0, 1.0]])
        out[i] = to_src @ a @ to_centre
    return out


def apply_homography(hom: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``[..., 2]`` points through a ``[3, 3]`` homography."""
    p = xy @ hom[:2, :2].T + hom[:2, 2]
    d = xy @ hom[2, :2] + hom[2, 2]
    return np.asarray(p / d[..., None])


def prepare_source(image: np.ndarray, cfg: BenchmarkConfig) -> np.ndarray:
    """Resize so the source is twice the view in its tighter direction."""
    h, w = image.shape[:2]
    scale = max(2.0 * cfg.height / h, 2.0 * cfg.width / w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=interp))


def query_points(
    rng: np.random.Generator, grey0: np.ndarray, free: np.ndarray, count: int
) -> np.ndarray:
    """float64 ``[<=count, 2]`` OpenCV positions on frame 0 where ``free``: half on corners
    (textured places), the rest uniformly at random (fewer only if ``free`` is empty)."""
    h, w = grey0.shape
    n_corner = count // 2
    corners = cv2.goodFeaturesToTrack(
        grey0,
        maxCorners=4 * max(n_corner, 1),
        qualityLevel=0.01,
        minDistance=max(3, min(h, w) // 40),
        mask=free.astype(np.uint8),
    )
    cand = np.zeros((0, 2)) if corners is None else corners.reshape(-1, 2).astype(np.float64)
    if cand.shape[0] > n_corner:
        cand = cand[np.sort(rng.choice(cand.shape[0], n_corner, replace=False))]
    pts = [cand]
    need = count - cand.shape[0]
    while need > 0 and free.any():
        r = rng.uniform([0, 0], [w - 1, h - 1], size=(4 * need, 2))
        ok = free[np.round(r[:, 1]).astype(int), np.round(r[:, 0]).astype(int)]
        r = r[ok][:need]
        pts.append(r)
        need -= r.shape[0]
    return np.concatenate(pts)[:count]


def camera_ground_truth(homs: np.ndarray, q_cv: np.ndarray) -> np.ndarray:
    """Continuous positions ``[P, T, 2]`` of frame-0 points ``q_cv`` under the camera path."""
    src_pts = apply_homography(homs[0], q_cv)  # [P, 2] in the source
    gt_cv = np.stack([apply_homography(np.linalg.inv(hm), src_pts) for hm in homs], axis=1)
    return np.asarray(gt_cv + 0.5)


def in_view(gt_xy: np.ndarray, h: int, w: int) -> np.ndarray:
    x, y = gt_xy[..., 0], gt_xy[..., 1]
    return np.asarray((x >= 0) & (x < w) & (y >= 0) & (y < h))


def pixel_of(gt_xy: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    col = np.clip(np.floor(gt_xy[..., 0]).astype(int), 0, w - 1)
    row = np.clip(np.floor(gt_xy[..., 1]).astype(int), 0, h - 1)
    return col, row
