"""The street scene: textured planes in the world, static or moving on their own paths.

Every part is a rectangle with a texture: a ground plane (infinite, tiled), façades and
parked cars beside the road, crossed-plane poles, and moving parts (cars in the lanes
either side of the ego, pedestrians on the pavements) whose pose is a function of time.
A point of a plane is known in the plane's own coordinates, so where it is in the world
at any time, and so in any camera, is exact.

World frame (``odom``): x, y on the ground, z up; the ego's road starts at the origin
heading +x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rvm_ros.street.path import MARGIN_M, VehiclePath
from rvm_ros.street.textures import TextureBank

__all__ = ["Mover", "Plane", "Scene", "make_scene"]


@dataclass(frozen=True, eq=False)
class Mover:
    """A moving object's frame: it drives / walks along the road at a fixed lateral offset.

    Attributes:
        s0: Arc length at t = 0 (m).
        speed: Signed speed along the road (m/s; negative: against the ego's direction).
        offset: Lateral offset (m, left positive).
        amp: Amplitude of a slow speed change (fraction of the speed).
        period: Its period (s).
    """

    s0: float
    speed: float
    offset: float
    amp: float = 0.0
    period: float = 10.0

    def to_world(self, path: VehiclePath, t: float) -> np.ndarray:
        """``[4, 4]`` object -> world at time ``t`` (x along its motion, z up)."""
        w = 2 * math.pi / self.period
        s = self.s0 + self.speed * (t + self.amp * (1 - math.cos(w * t)) / w)
        xy, road = path.road_at(s)
        h = float(road) + (math.pi if self.speed < 0 else 0.0)
        nx, ny = -math.sin(float(road)), math.cos(float(road))
        out = np.eye(4)
        c, sn = math.cos(h), math.sin(h)
        out[:2, :2] = [[c, -sn], [sn, c]]
        out[:2, 3] = (float(xy[0]) + self.offset * nx, float(xy[1]) + self.offset * ny)
        return out


@dataclass(frozen=True, eq=False)
class Plane:
    """A textured rectangle (or the infinite ground).

    The texture's OpenCV pixel ``(tx, ty)`` (centres at integers, ty down) is the point
    ``origin + axis_u * (tx + 0.5) * mu - axis_v * (ty + 0.5 - rows) * mv`` with
    ``mu = width_m / cols`` and ``mv = height_m / rows``: ``origin`` is the bottom-left
    corner, ``axis_u`` runs along the width, ``axis_v`` up the height (the ground: a
    tiling texture of ``mu`` metres per pixel, origin at the world origin).

    Attributes:
        texture: RGB uint8 ``[rows, cols, 3]``.
        origin: ``[3]`` bottom-left corner (object frame of ``mover``, else world).
        axis_u: ``[3]`` unit vector along the width.
        axis_v: ``[3]`` unit vector along the height.
        width_m: Width (m); ground: metres per texture pixel.
        height_m: Height (m); ground: metres per texture pixel.
        kind: ``ground`` | ``facade`` | ``pole`` | ``car`` | ``pedestrian``.
        mover: The object frame of a moving part (None: static).
    """

    texture: np.ndarray
    origin: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    width_m: float
    height_m: float
    kind: str
    mover: Mover | None = None

    @property
    def is_ground(self) -> bool:
        """The infinite tiled ground plane."""
        return self.kind == "ground"

    def frame(self, path: VehiclePath, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(origin, axis_u, axis_v)`` in the world at time ``t``."""
        if self.mover is None:
            return self.origin, self.axis_u, self.axis_v
        m = self.mover.to_world(path, t)
        r, p = m[:3, :3], m[:3, 3]
        return r @ self.origin + p, r @ self.axis_u, r @ self.axis_v

    def texel_scale(self) -> tuple[float, float]:
        """Metres per texture pixel ``(mu, mv)``."""
        if self.is_ground:
            return self.width_m, self.height_m
        rows, cols = self.texture.shape[:2]
        return self.width_m / cols, self.height_m / rows

    def local_to_world(self, path: VehiclePath, t: float, uv_m: np.ndarray) -> np.ndarray:
        """World points ``[N, 3]`` of plane coordinates ``uv_m`` ``[N, 2]`` (metres)."""
        o, a, b = self.frame(path, t)
        uv = np.asarray(uv_m, np.float64).reshape(-1, 2)
        return np.asarray(o[None] + uv[:, :1] * a[None] + uv[:, 1:] * b[None])


@dataclass(frozen=True, eq=False)
class Scene:
    """The planes of one drive (index = plane id; 0 is the ground) and the sky colour."""

    path: VehiclePath
    planes: list[Plane] = field(default_factory=list)
    sky: tuple[float, float, float] = (185.0, 205.0, 230.0)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def static_ids(self) -> np.ndarray:
        """``[S]`` ids of the static parts (the ground excluded)."""
        if "static" not in self._cache:
            self._cache["static"] = np.asarray(
                [i for i, p in enumerate(self.planes) if p.mover is None and not p.is_ground],
                np.int64,
            )
        return self._cache["static"]

    def moving_ids(self) -> np.ndarray:
        """``[M]`` ids of the moving parts."""
        if "moving" not in self._cache:
            self._cache["moving"] = np.asarray(
                [i for i, p in enumerate(self.planes) if p.mover is not None], np.int64
            )
        return self._cache["moving"]

    def static_corners(self) -> np.ndarray:
        """``[S, 4, 3]`` world corners of the static parts (order of :meth:`static_ids`)."""
        if "corners" not in self._cache:
            rows = []
            for i in self.static_ids().tolist():
                p = self.planes[i]
                o, a, b = p.origin, p.axis_u, p.axis_v
                w, h = p.width_m, p.height_m
                rows.append(np.stack([o, o + w * a, o + w * a + h * b, o + h * b]))
            self._cache["corners"] = np.asarray(rows).reshape(-1, 4, 3)
        return self._cache["corners"]


def _upright(
    centre: np.ndarray, heading: float, width: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin and axes of an upright rectangle centred at ``centre`` (ground), along ``heading``."""
    a = np.array([math.cos(heading), math.sin(heading), 0.0])
    o = np.array([centre[0], centre[1], 0.0]) - 0.5 * width * a
    return o, a, np.array([0.0, 0.0, 1.0])


def _box(
    tex: TextureBank,
    length: float,
    width: float,
    height: float,
    mover: Mover | None,
    centre: np.ndarray,
    heading: float,
) -> list[Plane]:
    """Four upright faces of a car-sized box (object frame if ``mover``, else world)."""
    up = np.array([0.0, 0.0, 1.0])
    faces = [  # (origin, axis_u, width) in the box frame: x forward, y left
        ((-length / 2, width / 2), (1.0, 0.0), length),
        ((length / 2, -width / 2), (-1.0, 0.0), length),
        ((-length / 2, -width / 2), (0.0, 1.0), width),
        ((length / 2, width / 2), (0.0, -1.0), width),
    ]
    c, s = math.cos(heading), math.sin(heading)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    shift = np.array([centre[0], centre[1], 0.0])
    out = []
    for (ox, oy), (ux, uy), w in faces:
        o, a = np.array([ox, oy, 0.0]), np.array([ux, uy, 0.0])
        if mover is None:
            o, a = rot @ o + shift, rot @ a
        out.append(Plane(tex.car(w, height), o, a, up, w, height, "car", mover))
    return out


def _roadside(
    rng: np.random.Generator, tex: TextureBank, path: VehiclePath, end: float
) -> list[Plane]:
    """Static façades, poles and parked cars along both sides of the road."""
    planes: list[Plane] = []
    for side in (1.0, -1.0):
        s = -MARGIN_M + 5.0
        while s < end:  # façades with gaps
            width = rng.uniform(10.0, 25.0)
            xy, h = path.road_at(s + width / 2)
            off = side * rng.uniform(10.0, 15.0)
            centre = xy + off * np.array([-math.sin(float(h)), math.cos(float(h))])
            height = rng.uniform(6.0, 15.0)
            o, a, b = _upright(centre, float(h), width)
            planes.append(Plane(tex.facade(width, height), o, a, b, width, height, "facade"))
            s += width + rng.uniform(0.0, 8.0)
        s = -MARGIN_M + rng.uniform(5.0, 20.0)
        while s < end:  # poles: two crossed planes each
            xy, h = path.road_at(s)
            centre = xy + side * 6.5 * np.array([-math.sin(float(h)), math.cos(float(h))])
            height = rng.uniform(4.0, 7.0)
            pole = tex.pole(height)
            for turn in (0.0, math.pi / 2):
                o, a, b = _upright(centre, float(h) + turn, 0.3)
                planes.append(Plane(pole, o, a, b, 0.3, height, "pole"))
            s += rng.uniform(15.0, 35.0)
        s = -MARGIN_M + rng.uniform(5.0, 30.0)
        while s < end:  # parked cars
            xy, h = path.road_at(s)
            centre = xy + side * 5.2 * np.array([-math.sin(float(h)), math.cos(float(h))])
            planes += _box(tex, 4.5, 1.8, 1.5, None, centre, float(h))
            s += rng.uniform(12.0, 40.0)
    return planes


def _traffic(
    rng: np.random.Generator,
    tex: TextureBank,
    end: float,
    cars: int,
    pedestrians: int,
) -> list[Plane]:
    """Cars in the neighbouring lanes and pedestrians on the pavements, on their own paths."""
    planes: list[Plane] = []
    zero = np.zeros(2)
    for i in range(cars):
        oncoming = i % 2 == 0
        speed = rng.uniform(4.0, 12.0) * (-1.0 if oncoming else 1.0)
        s0 = rng.uniform(0.0, end) + (0.3 * end if oncoming else 0.0)
        mover = Mover(
            s0, speed, 3.5 if oncoming else -3.5, rng.uniform(0, 0.4), rng.uniform(6.0, 14.0)
        )
        planes += _box(tex, 4.5, 1.8, 1.5, mover, zero, 0.0)
    for _ in range(pedestrians):
        side = 1.0 if rng.random() < 0.5 else -1.0
        speed = rng.uniform(0.8, 1.6) * (1.0 if rng.random() < 0.5 else -1.0)
        mover = Mover(rng.uniform(0.0, end), speed, side * 7.8, rng.uniform(0, 0.3), 4.0)
        o = np.array([0.0, -0.3, 0.0])  # faces the road
        a, b = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
        planes.append(Plane(tex.pedestrian(), o, a, b, 0.6, 1.7, "pedestrian", mover))
    return planes


def make_scene(
    rng: np.random.Generator,
    path: VehiclePath,
    cars: int = 8,
    pedestrians: int = 10,
    photos: list[np.ndarray] | None = None,
) -> Scene:
    """The planes of a drive along ``path``: ground, roadside, traffic."""
    tex = TextureBank(rng, photos)
    ground_tex, mpp = tex.ground()
    ground = Plane(
        ground_tex,
        np.zeros(3),
        np.array([1.0, 0.0, 0.0]),
        np.array([0.0, -1.0, 0.0]),
        mpp,
        mpp,
        "ground",
    )
    end = float(path.s_of_t[-1]) + 60.0
    planes = [
        ground,
        *_roadside(rng, tex, path, end),
        *_traffic(rng, tex, end, cars, pedestrians),
    ]
    return Scene(path, planes)
