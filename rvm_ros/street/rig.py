"""The camera rig: pinhole cameras with intrinsics and a fixed pose on the vehicle.

Frames: ``base_link`` on the ground under the vehicle (x forward, y left, z up, REP 103);
each camera's optical frame ``<name>_optical`` (z forward, x right, y down, REP 103).
Intrinsics are CameraInfo's ``K`` (pixel centres at integers, OpenCV / ROS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rvm_ros.errors import RvmRosError

__all__ = ["PRESET_YAWS_DEG", "RigCamera", "RigError", "make_rig"]

#: Camera yaws of the preset rig, in the order cameras are added (1-6 cameras).
PRESET_YAWS_DEG: tuple[tuple[str, float], ...] = (
    ("front", 0.0),
    ("front_left", 60.0),
    ("front_right", -60.0),
    ("back", 180.0),
    ("back_left", 120.0),
    ("back_right", -120.0),
)
MAX_CAMERAS = len(PRESET_YAWS_DEG)


class RigError(RvmRosError, ValueError):
    """A rig that cannot be built (camera count, size, field of view)."""

    cause = "invalid_argument"
    exit_code = 2


@dataclass(frozen=True, eq=False)
class RigCamera:
    """One camera of the rig.

    Attributes:
        name: Camera name (topics ``/<name>/image_raw``, ``/<name>/camera_info``).
        k: ``[3, 3]`` intrinsics (image pixels, centres at integers).
        width: Image columns.
        height: Image rows.
        camera_to_base: ``[4, 4]`` optical frame -> base_link.
    """

    name: str
    k: np.ndarray
    width: int
    height: int
    camera_to_base: np.ndarray

    @property
    def frame_id(self) -> str:
        """The optical frame's name."""
        return f"{self.name}_optical"

    def rays(self) -> np.ndarray:
        """``[H, W, 3]`` ``K^-1 [u, v, 1]`` at each pixel centre (z = 1)."""
        u, v = np.meshgrid(
            np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64)
        )
        kinv = np.linalg.inv(self.k)
        pix = np.stack([u, v, np.ones_like(u)], axis=-1)
        return np.asarray(pix @ kinv.T)

    def project(
        self, world_to_camera: np.ndarray, points: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(xy [N, 2], depth [N])``: continuous pixels (pixel (r, c) centred at c+.5, r+.5)."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        cam = pts @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (cam @ self.k.T)[:, :2] / z[:, None]
        return uv + 0.5, z


def _optical_to_base(yaw: float, x: float, y: float, z: float) -> np.ndarray:
    f = np.array([math.cos(yaw), math.sin(yaw), 0.0])  # optical z: forward
    r = np.array([math.sin(yaw), -math.cos(yaw), 0.0])  # optical x: right
    d = np.array([0.0, 0.0, -1.0])  # optical y: down
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2] = r, d, f
    out[:3, 3] = (x, y, z)
    return out


def make_rig(
    cameras: int = 3,
    width: int = 256,
    height: int = 256,
    hfov_deg: float = 90.0,
    mount_height: float = 1.6,
) -> list[RigCamera]:
    """The preset rig's first ``cameras`` cameras (see :data:`PRESET_YAWS_DEG`).

    Cameras sit on a 1 m circle around a point 1.5 m ahead of base_link, ``mount_height``
    above the ground, looking out horizontally; ``K`` has square pixels and the principal
    point at the image centre.

    Raises:
        RigError: Camera count outside 1-6, image sides outside 16-4096, field of view
            outside 20-150 degrees.
    """
    if not 1 <= cameras <= MAX_CAMERAS:
        raise RigError(f"--cameras must be between 1 and {MAX_CAMERAS}, got {cameras}")
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise RigError(f"image size must be 16-4096 pixels a side, got {width}x{height}")
    if not 20.0 <= hfov_deg <= 150.0:
        raise RigError(f"--hfov must be between 20 and 150 degrees, got {hfov_deg}")
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2)
    k = np.array([[f, 0.0, width / 2 - 0.5], [0.0, f, height / 2 - 0.5], [0.0, 0.0, 1.0]])
    out = []
    for name, yaw_deg in PRESET_YAWS_DEG[:cameras]:
        yaw = math.radians(yaw_deg)
        pose = _optical_to_base(yaw, 1.5 + math.cos(yaw), math.sin(yaw), mount_height)
        out.append(RigCamera(name, k.copy(), width, height, pose))
    return out
