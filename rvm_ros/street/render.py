"""Exact rendering of the street scene: one homography and one depth plane per part.

Each plane maps its texture into a camera through the homography
``K [R a mu | -R b mv | R c0 + t]`` (``rvm_ros.street.scene.Plane``'s texel mapping in
the camera frame), warped over the bounding box of the plane's outline (clipped at the
near plane) only. The depth of every pixel on the plane is exact (ray-plane
intersection), and a z-buffer keeps the nearest plane per pixel, so occlusion between
parts at different depths (and moving parts) is per pixel, not per plane. Distance fog
toward the sky colour hides aliasing of far texture. The plane id image is what the
ground-truth tracks use for visibility.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rvm_ros.street.rig import RigCamera
from rvm_ros.street.scene import Plane, Scene

__all__ = ["View", "render_view"]

NEAR_M = 0.1
FAR_M = 120.0
FOG_M = 60.0
_SHIFT = 4  # fillPoly sub-pixel bits


@dataclass(frozen=True, eq=False)
class View:
    """One rendered camera image.

    Attributes:
        rgb: ``[H, W, 3]`` uint8.
        depth: ``[H, W]`` float32 camera-frame z (inf: sky).
        ids: ``[H, W]`` int32 plane id (-1: sky).
    """

    rgb: np.ndarray
    depth: np.ndarray
    ids: np.ndarray


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def _clip_near(poly: np.ndarray, near: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon ``[N, 3]`` to ``z >= near``."""
    out = []
    n = poly.shape[0]
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        pin, qin = p[2] >= near, q[2] >= near
        if pin:
            out.append(p)
        if pin != qin:
            w = (near - p[2]) / (q[2] - p[2])
            out.append(p + w * (q - p))
    return np.asarray(out).reshape(-1, 3)


def _outline(
    plane: Plane, o: np.ndarray, a: np.ndarray, b: np.ndarray, cam_pos: np.ndarray
) -> np.ndarray:
    """World corners ``[4, 3]`` of the part (the ground: a square around the camera)."""
    if plane.is_ground:
        c = np.array([cam_pos[0], cam_pos[1], 0.0])
        r = FAR_M
        return c + np.array([[-r, -r, 0], [r, -r, 0], [r, r, 0], [-r, r, 0]], np.float64)
    w, h = plane.width_m, plane.height_m
    return np.stack([o, o + w * a, o + w * a + h * b, o + h * b])


def _draw_plane(
    plane: Plane,
    pid: int,
    frame: tuple[np.ndarray, np.ndarray, np.ndarray],
    cam: RigCamera,
    rays: np.ndarray,
    w2c: np.ndarray,
    buffers: tuple[np.ndarray, ...],
) -> None:
    rgb, depth, ids = buffers
    o, a, b = frame
    rot, tr = w2c[:3, :3], w2c[:3, 3]
    cam_pos = -rot.T @ tr
    corners = _outline(plane, o, a, b, cam_pos) @ rot.T + tr  # [4, 3] camera frame
    poly = _clip_near(corners, NEAR_M)
    if poly.shape[0] < 3:
        return
    uv = (poly @ cam.k.T)[:, :2] / poly[:, 2:3]  # OpenCV pixels
    x0, y0 = (max(0, int(np.floor(v))) for v in uv.min(axis=0))
    x1 = min(cam.width, int(np.ceil(uv[:, 0].max())) + 1)
    y1 = min(cam.height, int(np.ceil(uv[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    bw, bh = x1 - x0, y1 - y0
    mask = np.zeros((bh, bw), np.uint8)
    pts = np.round((uv - [x0, y0]) * (1 << _SHIFT)).astype(np.int64)
    pts = np.clip(pts, -(1 << 28), 1 << 28).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    # Exact depth of the plane along each pixel's ray: z = (n . p0) / (n . ray).
    n_c = rot @ _cross(a, b)
    d_c = float(n_c @ (rot @ o + tr))
    sub_rays = rays[y0:y1, x0:x1]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = d_c / (sub_rays @ n_c)
    dsub = depth[y0:y1, x0:x1]
    keep = (mask > 0) & (z > NEAR_M) & (z < dsub) & (z < FAR_M)
    if not keep.any():
        return
    # Texture -> image homography, then shifted to the bounding box.
    mu, mv = plane.texel_scale()
    rows = plane.texture.shape[0]
    c0 = o + 0.5 * mu * a + (rows - 0.5) * mv * b
    hom = cam.k @ np.stack([rot @ a * mu, -(rot @ b) * mv, rot @ c0 + tr], axis=1)
    hom = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]]) @ hom
    border = cv2.BORDER_WRAP if plane.is_ground else cv2.BORDER_REPLICATE
    warped = cv2.warpPerspective(
        plane.texture, hom, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=border
    )
    rgb[y0:y1, x0:x1][keep] = warped[keep]
    dsub[keep] = z[keep]
    ids[y0:y1, x0:x1][keep] = pid


def _corners(plane: Plane, frame: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    o, a, b = frame
    w, h = plane.width_m, plane.height_m
    return np.stack([o, o + w * a, o + w * a + h * b, o + h * b])


def _in_frustum(corners_c: np.ndarray, cam: RigCamera) -> np.ndarray:
    """``[P]`` False where a convex part lies wholly outside one frustum side (or too far).

    ``corners_c``: ``[P, 4, 3]`` camera-frame corners. The sides are half-spaces through
    the camera centre, so a convex polygon with all corners outside one is outside.
    """
    x, y, z = corners_c[..., 0], corners_c[..., 1], corners_c[..., 2]
    fx, fy, cx, cy = cam.k[0, 0], cam.k[1, 1], cam.k[0, 2], cam.k[1, 2]
    out = (z < NEAR_M).all(-1) | (z > FAR_M).all(-1)
    out |= (fx * x + cx * z < 0).all(-1) | (fx * x + (cx - cam.width) * z > 0).all(-1)
    out |= (fy * y + cy * z < 0).all(-1) | (fy * y + (cy - cam.height) * z > 0).all(-1)
    return np.asarray(~out)


def render_view(
    scene: Scene,
    cam: RigCamera,
    rays: np.ndarray,
    t: float,
    world_to_camera: np.ndarray,
    fog_m: float = FOG_M,
) -> View:
    """Render camera ``cam`` at time ``t`` (``rays``: ``cam.rays()``, computed once)."""
    h, w = cam.height, cam.width
    sky = np.asarray(scene.sky, np.float32)
    rgb = np.zeros((h, w, 3), np.uint8)
    depth = np.full((h, w), np.inf, np.float32)
    ids = np.full((h, w), -1, np.int32)
    rot, tr = world_to_camera[:3, :3], world_to_camera[:3, 3]
    frames = {0: scene.planes[0].frame(scene.path, t)}
    static = scene.static_ids()
    keep = _in_frustum(scene.static_corners() @ rot.T + tr, cam)
    for pid in static[keep].tolist():
        frames[pid] = scene.planes[pid].frame(scene.path, t)
    for pid in scene.moving_ids().tolist():
        frame = scene.planes[pid].frame(scene.path, t)
        if _in_frustum(_corners(scene.planes[pid], frame)[None] @ rot.T + tr, cam)[0]:
            frames[pid] = frame
    for pid in sorted(frames):
        _draw_plane(
            scene.planes[pid], pid, frames[pid], cam, rays, world_to_camera, (rgb, depth, ids)
        )
    out = rgb.astype(np.float32)
    fog = np.exp(-np.minimum(depth, 1e6) / fog_m)[..., None]  # sky: 0
    # A vertical sky gradient above the horizon.
    grad = (1.0 - 0.25 * np.linspace(1.0, 0.0, h, dtype=np.float32))[:, None, None]
    shaded = out * fog + (sky * grad) * (1.0 - fog)
    return View(np.clip(np.rint(shaded), 0, 255).astype(np.uint8), depth, ids)
