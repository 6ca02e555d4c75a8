"""One generated drive: path, scene and rig, rendered frame by frame with exact truth.

``StreetDrive(StreetConfig(seed=3))`` is deterministic in its config: the same config
gives the same images, poses and tracks, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from rvm_ros.street.path import VehiclePath, make_path
from rvm_ros.street.render import View, render_view
from rvm_ros.street.rig import RigCamera, RigError, make_rig
from rvm_ros.street.scene import Scene, make_scene
from rvm_ros.street.tracks import PointSet, project_points, seed_points

__all__ = ["DriveFrame", "StreetConfig", "StreetDrive"]

_DT = 0.005  # time grid of the path (s)


@dataclass(frozen=True)
class StreetConfig:
    """How a drive is made.

    Attributes:
        seed: Seed of every random choice.
        duration_s: Length of the drive.
        fps: Camera frame rate (all cameras expose together).
        cameras: Cameras of the preset rig (1-6).
        width: Image columns.
        height: Image rows.
        hfov_deg: Horizontal field of view.
        max_speed: Top cruising speed (m/s).
        cars: Moving cars in the neighbouring lanes.
        pedestrians: Pedestrians on the pavements.
        points: New ground-truth points per camera at each seeding.
        reseed_s: Seconds between seedings (points are kept to the end).
        noise_std: Sensor noise (grey levels).
    """

    seed: int = 0
    duration_s: float = 30.0
    fps: float = 10.0
    cameras: int = 3
    width: int = 256
    height: int = 256
    hfov_deg: float = 90.0
    max_speed: float = 12.0
    cars: int = 8
    pedestrians: int = 10
    points: int = 24
    reseed_s: float = 2.0
    noise_std: float = 2.0

    def __post_init__(self) -> None:
        if not 0.1 <= self.duration_s <= 3600.0:
            raise RigError(f"--duration must be 0.1-3600 s, got {self.duration_s}")
        if not 1.0 <= self.fps <= 100.0:
            raise RigError(f"--fps must be 1-100, got {self.fps}")
        if self.points < 0 or self.reseed_s <= 0 or self.cars < 0 or self.pedestrians < 0:
            raise RigError("points, cars and pedestrians must be >= 0 and reseed_s > 0")

    @property
    def num_frames(self) -> int:
        """Frames per camera."""
        return int(self.duration_s * self.fps) + 1


@dataclass(frozen=True, eq=False)
class DriveFrame:
    """One time step: every camera's view and its ground-truth points.

    Attributes:
        index: Frame number.
        t: Time since the start (s).
        views: Camera name -> rendered view.
        tracks: Camera name -> ``(ids [P], xy [P, 2], visible [P])`` of the points seeded
            so far on that camera.
        points: Camera name -> those points on their planes.
    """

    index: int
    t: float
    views: dict[str, View]
    tracks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    points: dict[str, PointSet] = field(default_factory=dict)


class StreetDrive:
    """A drive: ``path``, ``scene``, ``rig``, and its frames (:meth:`frames`)."""

    def __init__(self, cfg: StreetConfig, photos: list[np.ndarray] | None = None) -> None:
        self.cfg = cfg
        self.rig: list[RigCamera] = make_rig(cfg.cameras, cfg.width, cfg.height, cfg.hfov_deg)
        rng = np.random.default_rng([cfg.seed, 17])
        self.path: VehiclePath = make_path(rng, cfg.duration_s + 3.0, _DT, cfg.max_speed)
        self.scene: Scene = make_scene(rng, self.path, cfg.cars, cfg.pedestrians, photos)
        self._rays = {c.name: c.rays() for c in self.rig}

    def frame_time(self, index: int) -> float:
        """Time of frame ``index`` (s)."""
        return index / self.cfg.fps

    def world_to_camera(self, cam: RigCamera, t: float) -> np.ndarray:
        """``[4, 4]`` world -> optical frame of ``cam`` at time ``t``."""
        c2w = self.path.base_to_world(t) @ cam.camera_to_base
        out = np.eye(4)
        out[:3, :3] = c2w[:3, :3].T
        out[:3, 3] = -c2w[:3, :3].T @ c2w[:3, 3]
        return out

    def render(self, cam: RigCamera, t: float) -> View:
        """``cam``'s view at time ``t`` (no sensor noise)."""
        return render_view(self.scene, cam, self._rays[cam.name], t, self.world_to_camera(cam, t))

    def frames(self, with_tracks: bool = True) -> Iterator[DriveFrame]:
        """Every frame of the drive, rendered (with sensor noise) and with its tracks."""
        cfg = self.cfg
        noise = np.random.default_rng([cfg.seed, 29])
        points = {
            c.name: PointSet(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)))
            for c in self.rig
        }
        next_id = 0
        every = max(1, round(cfg.reseed_s * cfg.fps))
        for i in range(cfg.num_frames):
            t = self.frame_time(i)
            views, tracks = {}, {}
            for cam in self.rig:
                view = self.render(cam, t)
                w2c = self.world_to_camera(cam, t)
                if with_tracks and cfg.points and i % every == 0:
                    new = seed_points(self.scene, cam, view, t, w2c, noise, cfg.points, next_id)
                    next_id += len(new)
                    old = points[cam.name]
                    points[cam.name] = PointSet(
                        np.concatenate([old.ids, new.ids]),
                        np.concatenate([old.plane, new.plane]),
                        np.concatenate([old.uv_m, new.uv_m]),
                    )
                if with_tracks:
                    xy, _z, vis = project_points(self.scene, cam, points[cam.name], t, w2c, view)
                    tracks[cam.name] = (points[cam.name].ids, xy, vis)
                if cfg.noise_std > 0:
                    rgb = view.rgb.astype(np.float32)
                    rgb += noise.normal(0.0, cfg.noise_std, rgb.shape).astype(np.float32)
                    view = View(
                        np.clip(np.rint(rgb), 0, 255).astype(np.uint8), view.depth, view.ids
                    )
                views[cam.name] = view
            yield DriveFrame(i, t, views, tracks, dict(points) if with_tracks else {})
