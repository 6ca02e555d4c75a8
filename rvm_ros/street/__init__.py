"""Street-like drives with exact ego-motion: a generated scene of textured planes.

Pure numpy / OpenCV (no ROS): :class:`StreetDrive` renders a 1-6 camera rig on a smooth
vehicle path through a scene of ground, façades, poles, parked and moving cars and
pedestrians, with exact per-plane homographies, exact depth and exact point tracks.
``rvm_ros.bags.make_street`` writes drives to rosbag2 (``rvm-ros make-street``).
"""

from rvm_ros.street.drive import DriveFrame, StreetConfig, StreetDrive
from rvm_ros.street.path import VehiclePath, make_path
from rvm_ros.street.render import View, render_view
from rvm_ros.street.rig import PRESET_YAWS_DEG, RigCamera, RigError, make_rig
from rvm_ros.street.scene import Plane, Scene, make_scene
from rvm_ros.street.tracks import PointSet, project_points, seed_points

__all__ = [
    "PRESET_YAWS_DEG",
    "DriveFrame",
    "Plane",
    "PointSet",
    "RigCamera",
    "RigError",
    "Scene",
    "StreetConfig",
    "StreetDrive",
    "VehiclePath",
    "View",
    "make_path",
    "make_rig",
    "make_scene",
    "project_points",
    "render_view",
    "seed_points",
]
