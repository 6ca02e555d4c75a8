"""Camera geometry through the node's preprocessing: intrinsics in network pixels and cells.

Pure numpy (no ROS). Conventions (msg/CameraGeometry.msg, docs/NODE.md "Scene tokens"):

* Image intrinsics ``K`` are CameraInfo's: pixel centres at integers (OpenCV / ROS).
* Network-pixel and feature-cell coordinates are continuous with pixel / cell ``i``
  covering ``[i, i + 1)`` (the FeatureMap convention of
  :class:`rvm_ros.imaging.preprocess.Geometry`): an image point at OpenCV pixel ``u`` is
  at continuous image coordinate ``u + 0.5`` and at network ``(u + 0.5) * scale + offset``.
* Matrices are float64; ``camera_to_base`` maps camera-frame points (optical frame:
  z forward, x right, y down, metres) to the base frame; ``projection`` =
  ``[[K_network, 0], [0, 1]] @ inverse(camera_to_base)`` maps homogeneous base-frame
  points to ``(x * z, y * z, z, 1)`` in network pixels (SparseDrive ``projection_mat``,
  UniAD ``lidar2img``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rvm_ros.errors import RvmRosError
from rvm_ros.imaging.preprocess import Geometry
from rvm_ros.rotations import quaternion_to_matrix

__all__ = [
    "DISTORTION_MODELS",
    "CameraIntrinsics",
    "GeometryError",
    "SceneGeometry",
    "camera_geometry",
    "cell_intrinsics",
    "invert_rigid",
    "network_intrinsics",
    "pose_matrix",
    "project_points",
    "projection_matrix",
]

#: Distortion models carried through (the features are of the distorted image).
DISTORTION_MODELS: tuple[str, ...] = ("", "plumb_bob", "rational_polynomial", "equidistant")


class GeometryError(RvmRosError, ValueError):
    """Camera geometry that cannot be used (bad CameraInfo, bad transform)."""

    cause = "invalid_geometry"


@dataclass(frozen=True, eq=False)
class CameraIntrinsics:
    """Pinhole intrinsics of the image as received, with its distortion.

    Attributes:
        k: ``[3, 3]`` float64, image pixels (centres at integers), for the received image
            (CameraInfo binning and ROI already applied).
        width: Image columns these intrinsics describe.
        height: Image rows.
        distortion_model: CameraInfo's model name (carried through).
        distortion: CameraInfo's ``D``.
        frame_id: The camera frame (CameraInfo header).
    """

    k: np.ndarray
    width: int
    height: int
    distortion_model: str = ""
    distortion: tuple[float, ...] = ()
    frame_id: str = ""

    @classmethod
    def from_camera_info(cls, info: Any) -> CameraIntrinsics:  # Any: rclpy or rosbags class
        """Intrinsics of the image a ``sensor_msgs/CameraInfo`` describes.

        Works for rclpy and rosbags messages alike. ``K`` refers to the full-resolution
        sensor; binning and ROI are applied (continuous coordinates: ``u' + 0.5 =
        (u + 0.5 - roi.x_offset) / binning_x``).

        Raises:
            GeometryError: Zero or non-finite focal lengths, non-positive size.
        """
        k = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
        if not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0 or k[2, 2] != 1.0:
            raise GeometryError(f"CameraInfo K is not a pinhole matrix: {k.ravel().tolist()}")
        bx = max(1, int(getattr(info, "binning_x", 0) or 0))
        by = max(1, int(getattr(info, "binning_y", 0) or 0))
        roi = getattr(info, "roi", None)
        x0 = int(getattr(roi, "x_offset", 0) or 0)
        y0 = int(getattr(roi, "y_offset", 0) or 0)
        rw = int(getattr(roi, "width", 0) or 0)
        rh = int(getattr(roi, "height", 0) or 0)
        width = (rw or int(info.width)) // bx
        height = (rh or int(info.height)) // by
        if width <= 0 or height <= 0:
            raise GeometryError(f"CameraInfo size {info.width}x{info.height} is not positive")
        if bx != 1 or by != 1 or x0 or y0:
            crop = np.array(
                [
                    [1.0 / bx, 0.0, (0.5 - x0) / bx - 0.5],
                    [0.0, 1.0 / by, (0.5 - y0) / by - 0.5],
                    [0.0, 0.0, 1.0],
                ]
            )
            k = crop @ k
        d = tuple(float(v) for v in np.asarray(info.d, dtype=np.float64).ravel())
        frame = str(getattr(getattr(info, "header", None), "frame_id", "") or "")
        return cls(k, width, height, str(info.distortion_model), d, frame)


def network_intrinsics(k: np.ndarray, geometry: Geometry) -> np.ndarray:
    """``K`` (image pixels, centres at integers) mapped into network pixels (continuous).

    Args:
        k: ``[3, 3]`` image intrinsics.
        geometry: The preprocessing of this image size (stretch, letterbox, center_crop).

    Returns:
        ``[3, 3]`` float64 ``A @ k`` with ``A = [[sx, 0, sx / 2 + ox], [0, sy, sy / 2 + oy],
        [0, 0, 1]]``.
    """
    g = geometry
    a = np.array(
        [
            [g.scale_x, 0.0, 0.5 * g.scale_x + g.offset_x],
            [0.0, g.scale_y, 0.5 * g.scale_y + g.offset_y],
            [0.0, 0.0, 1.0],
        ]
    )
    return a @ np.asarray(k, dtype=np.float64)


def cell_intrinsics(k_network: np.ndarray, cell_size: int) -> np.ndarray:
    """Network-pixel intrinsics scaled to feature cells (``diag(1/c, 1/c, 1) @ K``)."""
    if cell_size <= 0:
        raise GeometryError(f"cell_size must be > 0, got {cell_size}")
    scale = np.diag([1.0 / cell_size, 1.0 / cell_size, 1.0])
    return np.asarray(scale @ np.asarray(k_network, dtype=np.float64))


def pose_matrix(translation: Sequence[float], quaternion_xyzw: Sequence[float]) -> np.ndarray:
    """``[4, 4]`` rigid transform of a translation and a unit quaternion ``(x, y, z, w)``.

    Raises:
        GeometryError: Wrong lengths, non-finite values or a quaternion far from unit
            length (|q| outside [0.99, 1.01]; it is normalised otherwise).
    """
    t = [float(v) for v in translation]
    q = [float(v) for v in quaternion_xyzw]
    if len(t) != 3 or len(q) != 4:
        raise GeometryError(
            f"a pose needs 3 translation and 4 quaternion values, got {len(t)} and {len(q)}"
        )
    if not all(math.isfinite(v) for v in t + q):
        raise GeometryError(f"pose values must be finite, got {t} {q}")
    norm = math.sqrt(sum(v * v for v in q))
    if not 0.99 <= norm <= 1.01:
        raise GeometryError(f"quaternion (x, y, z, w) {q} is not unit length (|q| = {norm:.4g})")
    out = np.eye(4)
    out[:3, :3] = quaternion_to_matrix([v / norm for v in q])
    out[:3, 3] = t
    return out


def invert_rigid(transform: np.ndarray) -> np.ndarray:
    """Inverse of a ``[4, 4]`` rigid transform (``[R^T, -R^T t]``)."""
    r = transform[:3, :3]
    out = np.eye(4)
    out[:3, :3] = r.T
    out[:3, 3] = -r.T @ transform[:3, 3]
    return out


def projection_matrix(k_network: np.ndarray, camera_to_base: np.ndarray) -> np.ndarray:
    """``[4, 4]`` projection of base-frame points into network pixels: ``K4 @ T_cam_base``."""
    k4 = np.eye(4)
    k4[:3, :3] = k_network
    return np.asarray(k4 @ invert_rigid(np.asarray(camera_to_base, dtype=np.float64)))


def project_points(projection: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project base-frame points with a ``[4, 4]`` projection.

    Args:
        projection: From :func:`projection_matrix` (or a message's ``projection``).
        points: ``[N, 3]`` base-frame points (metres).

    Returns:
        ``(xy [N, 2], depth [N])``: coordinates in the projection's units (network pixels,
        or cells for a cell projection) and the camera-frame depth (> 0: in front).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    hom = np.concatenate([pts, np.ones((pts.shape[0], 1))], axis=1)  # [N, 4]
    p = hom @ np.asarray(projection, dtype=np.float64).T  # [N, 4]
    depth = p[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = p[:, :2] / depth[:, None]
    return xy, depth


_NAN3 = np.full((3, 3), np.nan)
_NAN4 = np.full((4, 4), np.nan)


@dataclass(frozen=True, eq=False)
class SceneGeometry:
    """The geometry of one camera for one image size (what CameraGeometry carries).

    Unknown parts are NaN (never zero); ``reason`` says what is missing.

    Attributes:
        intrinsics: ``[3, 3]`` image intrinsics (NaN when unknown).
        intrinsics_network: ``[3, 3]`` in network pixels.
        intrinsics_cell: ``[3, 3]`` in feature cells.
        camera_to_base: ``[4, 4]`` (NaN when unknown).
        projection: ``[4, 4]`` base frame -> network pixels.
        distortion_model: Carried from CameraInfo.
        distortion: Carried from CameraInfo.
        frame_id: Camera frame (CameraInfo, else the image header).
        extrinsics_source: ``tf`` | ``static`` | ``""``.
        reason: ``""`` when complete, else ``no_camera_info`` | ``camera_info_mismatch`` |
            ``no_transform``.
    """

    intrinsics: np.ndarray
    intrinsics_network: np.ndarray
    intrinsics_cell: np.ndarray
    camera_to_base: np.ndarray
    projection: np.ndarray
    distortion_model: str
    distortion: tuple[float, ...]
    frame_id: str
    extrinsics_source: str
    reason: str

    @property
    def valid(self) -> bool:
        """Whether intrinsics and extrinsics are both known."""
        return not self.reason


def camera_geometry(
    intrinsics: CameraIntrinsics | None,
    camera_to_base: np.ndarray | None,
    extrinsics_source: str,
    geometry: Geometry,
    cell_size: int,
    frame_id: str = "",
) -> SceneGeometry:
    """Combine intrinsics, extrinsics and preprocessing into one camera's scene geometry.

    Args:
        intrinsics: From CameraInfo, or None when none arrived.
        camera_to_base: ``[4, 4]``, or None when no transform is known.
        extrinsics_source: ``tf`` | ``static`` (ignored when ``camera_to_base`` is None).
        geometry: The preprocessing of the received image.
        cell_size: Network pixels per feature cell side.
        frame_id: Camera frame used when ``intrinsics`` does not name one.

    Returns:
        The :class:`SceneGeometry`; intrinsics whose size differs from the image's give
        ``camera_info_mismatch`` (NaN intrinsics) rather than a wrong projection.
    """
    reason = ""
    k = k_net = k_cell = _NAN3
    model, frame = "", frame_id
    dist: tuple[float, ...] = ()
    if intrinsics is None:
        reason = "no_camera_info"
    else:
        model, dist = intrinsics.distortion_model, intrinsics.distortion
        frame = intrinsics.frame_id or frame_id
        if (intrinsics.height, intrinsics.width) != (geometry.image_height, geometry.image_width):
            reason = "camera_info_mismatch"
        else:
            k = intrinsics.k
            k_net = network_intrinsics(k, geometry)
            k_cell = cell_intrinsics(k_net, cell_size)
    if camera_to_base is None:
        t_cb, source = _NAN4, ""
        reason = reason or "no_transform"
    else:
        t_cb, source = np.asarray(camera_to_base, dtype=np.float64), extrinsics_source
    proj = projection_matrix(k_net, t_cb) if not reason else _NAN4
    return SceneGeometry(k, k_net, k_cell, t_cb, proj, model, dist, frame, source, reason)
