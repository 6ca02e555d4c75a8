"""The benchmark's ``objects`` split: things that move on their own over a moving view.

Several textured, non-rectangular objects (an ellipse or a polygon cut from another real
image) each follow their own smooth path (translation with a turning heading and a
varying speed, rotation, scale) over a background that moves under its own camera path.
They are drawn in depth order, so they occlude each other and the background. Ground
truth is exact: a point on object ``k`` is an object-local point carried through that
object's affine map of each frame, visible when it lies in the view and object ``k`` is
the front-most layer there; a background point follows the camera's homographies and is
visible where no object covers it. Half the query points are on the objects and half on
the background, reported separately (``TrackingSequence.subsets``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from rvm_ros.tracking.evaluation.camera import camera_ground_truth, in_view, pixel_of, query_points
from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig
from rvm_ros.tracking.evaluation.sources import Source

__all__ = ["MovingObject", "draw_objects", "make_objects", "object_ground_truth", "object_points"]


@dataclass(frozen=True, eq=False)
class MovingObject:
    """One object: its texture, its shape and where it is on each frame.

    Attributes:
        texture: uint8 ``[s, s, 3]`` RGB.
        shape: uint8 ``[s, s]`` 1 inside the object.
        maps: float64 ``[T, 2, 3]`` affine maps from object pixels to view pixels
            (OpenCV coordinates).
    """

    texture: np.ndarray
    shape: np.ndarray
    maps: np.ndarray


def _shape(rng: np.random.Generator, size: int) -> np.ndarray:
    shape = np.zeros((size, size), np.uint8)
    c = size / 2.0
    if rng.uniform() < 0.4:
        axes = (int(size * rng.uniform(0.3, 0.48)), int(size * rng.uniform(0.22, 0.48)))
        cv2.ellipse(shape, (int(c), int(c)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:  # a star-like polygon: concave, like a person or a bike seen from afar
        n = int(rng.integers(5, 10))
        ang = np.sort(rng.uniform(0, 2 * math.pi, n))
        rad = size * rng.uniform(0.2, 0.48, n)
        poly = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1)
        cv2.fillPoly(shape, [np.round(poly).astype(np.int32)], 1)
    return shape


def _path(
    rng: np.random.Generator, num_t: int, hw: tuple[int, int], size: int, unit: float
) -> np.ndarray:
    """float64 ``[T, 2, 3]``: object pixels to view pixels along a smooth random path."""
    h, w = hw
    t = np.arange(num_t, dtype=np.float64)
    speed = rng.uniform(1.0, 5.0) * unit * (1.0 + 0.4 * np.sin(rng.uniform(0.05, 0.2) * t))
    heading = rng.uniform(0, 2 * math.pi) + rng.uniform(-0.06, 0.06) * t
    vel = np.stack([np.cos(heading), np.sin(heading)], 1) * speed[:, None]
    pos = np.concatenate([[[0.0, 0.0]], np.cumsum(vel[1:], axis=0)])
    t_mid = int(rng.integers(0, max(1, num_t // 4)))  # in view near the start
    pos += np.array([w, h]) * rng.uniform(0.25, 0.75, 2) - pos[t_mid]
    angle = math.radians(rng.uniform(-40, 40)) * np.sin(
        rng.uniform(0.02, 0.08) * t + rng.uniform(0, 6.28)
    )
    scale = np.exp(math.log(1.25) * np.sin(rng.uniform(0.02, 0.08) * t + rng.uniform(0, 6.28)))
    out = np.empty((num_t, 2, 3))
    c = (size - 1) / 2.0
    for i in range(num_t):
        ca, sa = math.cos(angle[i]) * scale[i], math.sin(angle[i]) * scale[i]
        a = np.array([[ca, -sa], [sa, ca]])
        out[i, :, :2] = a
        out[i, :, 2] = pos[i] - a @ np.array([c, c])
    return out


def make_objects(
    rng: np.random.Generator,
    num_t: int,
    hw: tuple[int, int],
    sources: list[np.ndarray],
    count: int,
) -> list[MovingObject]:
    """``count`` objects, deepest first, textured from ``sources`` (other images)."""
    h, w = hw
    unit = max(h, w) / 256.0
    out = []
    for _ in range(count):
        src = sources[int(rng.integers(len(sources)))]
        size = max(8, int(rng.uniform(0.2, 0.4) * min(h, w)))
        # the texture at about the scale of the view (sources are twice the view or more)
        crop = min(src.shape[0], src.shape[1], int(size * rng.uniform(1.0, 1.6)))
        sy = int(rng.integers(0, max(1, src.shape[0] - crop)))
        sx = int(rng.integers(0, max(1, src.shape[1] - crop)))
        patch = src[sy : sy + crop, sx : sx + crop]
        tex = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
        path = _path(rng, num_t, hw, size, unit)
        out.append(MovingObject(np.ascontiguousarray(tex), _shape(rng, size), path))
    return out


def draw_objects(frames: np.ndarray, objects: list[MovingObject]) -> np.ndarray:
    """Paint the objects onto ``frames`` ``[T, H, W, 3]`` in place (deepest first).

    Returns:
        int16 ``[T, H, W]``: the front-most object at each pixel, -1 for background.
    """
    num_t, h, w = frames.shape[:3]
    owner = np.full((num_t, h, w), -1, np.int16)
    for k, obj in enumerate(objects):
        for i in range(num_t):
            m = obj.maps[i]
            tex = cv2.warpAffine(obj.texture, m, (w, h), flags=cv2.INTER_LINEAR)
            mask = cv2.warpAffine(obj.shape, m, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
            frames[i][mask] = tex[mask]
            owner[i][mask] = k
    return owner


def object_ground_truth(
    objects: list[MovingObject], which: np.ndarray, q_cv: np.ndarray
) -> np.ndarray:
    """float64 ``[P, T, 2]`` OpenCV positions of points ``q_cv`` (on frame 0) of objects
    ``which`` ``[P]`` on every frame."""
    num_t = objects[0].maps.shape[0] if objects else 0
    out = np.zeros((q_cv.shape[0], num_t, 2))
    for k, obj in enumerate(objects):
        rows = np.flatnonzero(which == k)
        if not rows.size:
            continue
        a0 = np.vstack([obj.maps[0], [0.0, 0.0, 1.0]])
        local = (np.linalg.inv(a0)[:2, :2] @ q_cv[rows].T).T + np.linalg.inv(a0)[:2, 2]
        for i in range(num_t):
            out[rows, i] = local @ obj.maps[i][:, :2].T + obj.maps[i][:, 2]
    return out


def object_points(
    rng: np.random.Generator,
    cfg: BenchmarkConfig,
    frames: np.ndarray,
    homs: np.ndarray,
    sources: list[Source],
    scene: int,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, np.ndarray]]]:
    """Objects painted onto ``frames``; ground truth of half the points on them, half on
    the background: ``(gt_xy [P, T, 2], visible [P, T], subsets)``."""
    num_t, h, w = frames.shape[:3]
    others = [sources[i][1] for i in range(len(sources)) if i != scene]
    count = int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))
    objects = make_objects(rng, num_t, (h, w), others, count)
    owner = draw_objects(frames, objects)
    grey0 = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    kernel = np.ones((5, 5), np.uint8)  # away from the outlines (ownership is exact there)
    on_obj = cv2.erode((owner[0] >= 0).astype(np.uint8), kernel).astype(bool)
    on_bg = cv2.erode((owner[0] < 0).astype(np.uint8), kernel).astype(bool)
    q_obj = query_points(rng, grey0, on_obj, cfg.num_points // 2)
    q_bg = query_points(rng, grey0, on_bg, cfg.num_points - q_obj.shape[0])
    which = owner[0][np.round(q_obj[:, 1]).astype(int), np.round(q_obj[:, 0]).astype(int)]
    obj_xy = object_ground_truth(objects, which.astype(np.int64), q_obj) + 0.5
    gt_xy = np.concatenate([obj_xy, camera_ground_truth(homs, q_bg)])
    col, row = pixel_of(gt_xy, h, w)
    top = owner[np.arange(num_t)[None, :], row, col]  # [P, T]
    layer = np.concatenate([which, np.full(q_bg.shape[0], -1)])[:, None]
    visible = in_view(gt_xy, h, w) & (top == layer)
    is_obj = np.arange(gt_xy.shape[0]) < q_obj.shape[0]
    return gt_xy, visible, [("on objects", is_obj), ("background", ~is_obj)]
