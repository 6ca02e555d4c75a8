"""Ground-truth point tracks of the street scene: points fixed on planes, seen by a camera.

A point is seeded on a rendered frame (half on corners, half uniformly on non-sky pixels),
lifted to its plane through the exact depth and kept in that plane's own coordinates, so it
moves with the plane (moving parts included). Its position in any frame is the projection
of the plane point at that frame's time; it is visible where it is in front of the camera,
inside the image, and the z-buffer's nearest plane at its pixel is its own. Points on
different depths move differently (parallax): no single homography fits a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rvm_ros.street.render import NEAR_M, View
from rvm_ros.street.rig import RigCamera
from rvm_ros.street.scene import Scene

__all__ = ["PointSet", "project_points", "seed_points"]


@dataclass(frozen=True, eq=False)
class PointSet:
    """Points fixed on the scene's planes.

    Attributes:
        ids: ``[P]`` int64 track ids.
        plane: ``[P]`` int64 plane ids.
        uv_m: ``[P, 2]`` float64 plane coordinates (metres along ``axis_u``, ``axis_v``).
    """

    ids: np.ndarray
    plane: np.ndarray
    uv_m: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.size)


def _pick_pixels(view: View, rng: np.random.Generator, count: int) -> np.ndarray:
    """``[n, 2]`` OpenCV pixel coordinates: corners and random non-sky pixels."""
    free = (view.ids >= 0).astype(np.uint8)
    grey = cv2.cvtColor(view.rgb, cv2.COLOR_RGB2GRAY)
    corners = cv2.goodFeaturesToTrack(
        grey, maxCorners=2 * count, qualityLevel=0.01, minDistance=4, mask=free
    )
    cand = np.zeros((0, 2)) if corners is None else corners.reshape(-1, 2).astype(np.float64)
    half = count // 2
    if cand.shape[0] > half:
        cand = cand[np.sort(rng.choice(cand.shape[0], half, replace=False))]
    rows, cols = np.nonzero(free)
    need = count - cand.shape[0]
    if rows.size and need > 0:
        pick = rng.choice(rows.size, min(need, rows.size), replace=False)
        rand = np.stack([cols[pick], rows[pick]], axis=1).astype(np.float64)
        rand += rng.uniform(-0.4, 0.4, rand.shape)  # sub-pixel positions
        cand = np.concatenate([cand, rand])
    return cand


def seed_points(
    scene: Scene,
    cam: RigCamera,
    view: View,
    t: float,
    world_to_camera: np.ndarray,
    rng: np.random.Generator,
    count: int,
    first_id: int,
) -> PointSet:
    """Up to ``count`` new points on the planes seen in ``view`` (ids from ``first_id``)."""
    px = _pick_pixels(view, rng, count)
    col = np.clip(np.rint(px[:, 0]).astype(int), 0, cam.width - 1)
    row = np.clip(np.rint(px[:, 1]).astype(int), 0, cam.height - 1)
    planes = view.ids[row, col].astype(np.int64)
    ok = planes >= 0
    px, planes = px[ok], planes[ok]
    rays = np.concatenate([px, np.ones((px.shape[0], 1))], axis=1) @ np.linalg.inv(cam.k).T
    rot, tr = world_to_camera[:3, :3], world_to_camera[:3, 3]
    uv = np.zeros((px.shape[0], 2))
    for i, (ray, pid) in enumerate(zip(rays, planes, strict=True)):
        o, a, b = scene.planes[pid].frame(scene.path, t)
        n_c = rot @ np.array(
            [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
        )
        z = float(n_c @ (rot @ o + tr)) / float(n_c @ ray)  # exact depth on its plane
        world = rot.T @ (ray * z - tr)
        uv[i] = ((world - o) @ a, (world - o) @ b)
    ids = np.arange(first_id, first_id + px.shape[0], dtype=np.int64)
    return PointSet(ids, planes, uv)


def project_points(
    scene: Scene,
    cam: RigCamera,
    points: PointSet,
    t: float,
    world_to_camera: np.ndarray,
    view: View | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the points are in ``cam`` at time ``t``.

    Returns:
        ``(xy [P, 2] continuous pixels, depth [P], visible [P])``; without ``view``,
        visible ignores occlusion (in front and inside the image only).
    """
    world = np.zeros((len(points), 3))
    for pid in np.unique(points.plane):
        sel = points.plane == pid
        world[sel] = scene.planes[int(pid)].local_to_world(scene.path, t, points.uv_m[sel])
    xy, z = cam.project(world_to_camera, world)
    inside = (z > NEAR_M) & (xy[:, 0] >= 0) & (xy[:, 0] < cam.width)
    inside &= (xy[:, 1] >= 0) & (xy[:, 1] < cam.height)
    if view is None:
        return xy, z, inside
    col = np.clip(np.floor(np.nan_to_num(xy[:, 0])).astype(int), 0, cam.width - 1)
    row = np.clip(np.floor(np.nan_to_num(xy[:, 1])).astype(int), 0, cam.height - 1)
    own = view.ids[row, col] == points.plane
    return xy, z, inside & own
