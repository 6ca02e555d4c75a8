"""Street drives: exact geometry (points, depth, bag poses), parallax, the path, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rvm_ros.street import PointSet, RigError, StreetConfig, StreetDrive, make_rig
from rvm_ros.street.path import make_path
from rvm_ros.street.tracks import project_points

SMALL = dict(duration_s=2.0, width=96, height=80, cars=4, pedestrians=4, points=40)


@pytest.fixture(scope="module")
def drive() -> StreetDrive:
    return StreetDrive(StreetConfig(seed=5, cameras=2, **SMALL))


@pytest.fixture(scope="module")
def frames(drive: StreetDrive) -> list:
    return list(drive.frames())


def _pinhole(k: np.ndarray, cam_to_world: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Independent projection: world point -> continuous pixel (centre of (r, c) = c+.5, r+.5)."""
    rot, pos = cam_to_world[:3, :3], cam_to_world[:3, 3]
    x = rot.T @ (world - pos)
    return np.array([k[0, 0] * x[0] / x[2] + k[0, 2] + 0.5, k[1, 1] * x[1] / x[2] + k[1, 2] + 0.5])


def _yaw_pose(x: float, y: float, yaw: float) -> np.ndarray:
    m = np.eye(4)
    m[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
    m[:2, 3] = (x, y)
    return m


@pytest.mark.parametrize("kind", ["facade", "car", "ground", "pole"])
def test_known_3d_point_projects_to_its_ground_truth_pixel(drive: StreetDrive, kind: str) -> None:
    """A plane's corner / point, projected by hand from (x, y, yaw) and the rig, vs the tracks."""
    cam = drive.rig[0]
    t = 1.3
    x, y, yaw = drive.path.pose_at(t)
    cam_to_world = _yaw_pose(x, y, yaw) @ cam.camera_to_base
    w2c = drive.world_to_camera(cam, t)
    ahead = np.array([x + 20 * math.cos(yaw), y + 20 * math.sin(yaw), 0.0])
    pid = min(
        (i for i, p in enumerate(drive.scene.planes) if p.kind == kind),
        key=lambda i: np.linalg.norm(drive.scene.planes[i].frame(drive.path, t)[0] - ahead),
    )
    plane = drive.scene.planes[pid]
    uv = np.array([[0.37 * min(plane.width_m, 5.0), 0.61 * min(plane.height_m, 5.0)]])
    o, a, b = plane.frame(drive.path, t)
    world = o + uv[0, 0] * a + uv[0, 1] * b  # the known 3D point
    pts = PointSet(np.array([0]), np.array([pid]), uv)
    xy, depth, _ = project_points(drive.scene, cam, pts, t, w2c)
    expected = _pinhole(cam.k, cam_to_world, world)
    if depth[0] > 0:
        assert np.abs(xy[0] - expected).max() < 0.05
    else:  # behind the camera: both agree it is not in view
        assert (cam_to_world[:3, :3].T @ (world - cam_to_world[:3, 3]))[2] < 0


def test_tracks_agree_with_the_rendered_depth_and_plane(drive: StreetDrive, frames: list) -> None:
    """At a visible point's pixel the image shows its plane, at the plane's exact depth."""
    checked = 0
    kinv = None
    for f in frames[::5]:
        for cam in drive.rig:
            kinv = np.linalg.inv(cam.k)
            _ids, xy, vis = f.tracks[cam.name]
            pts = f.points[cam.name]
            view = f.views[cam.name]
            w2c = drive.world_to_camera(cam, f.t)
            for p, pid, v in zip(xy, pts.plane, vis, strict=True):
                if not v:
                    continue
                c, r = int(np.floor(p[0])), int(np.floor(p[1]))
                assert view.ids[r, c] == pid
                o, a, b = drive.scene.planes[int(pid)].frame(drive.path, f.t)
                n = w2c[:3, :3] @ np.cross(a, b)
                ray = kinv @ np.array([c, r, 1.0])  # the pixel's centre
                z = float(n @ (w2c[:3, :3] @ o + w2c[:3, 3])) / float(n @ ray)
                assert view.depth[r, c] == pytest.approx(z, rel=1e-5)
                checked += 1
    assert checked > 20


def test_triangulated_point_reprojects_to_its_track(drive: StreetDrive, frames: list) -> None:
    """From the bag's own data only: two views of a static point fix it; a third agrees."""
    cam = drive.rig[0]
    first, mid, last = frames[0], frames[3], frames[6]
    ids0, xy0, vis0 = first.tracks[cam.name]
    n0 = ids0.size
    xy1, vis1 = mid.tracks[cam.name][1][:n0], mid.tracks[cam.name][2][:n0]
    xy2, vis2 = last.tracks[cam.name][1][:n0], last.tracks[cam.name][2][:n0]
    plane = first.points[cam.name].plane
    static = np.array([drive.scene.planes[p].mover is None for p in plane])
    poses = []
    for f in (first, mid, last):
        x, y, yaw = drive.path.pose_at(f.t)
        poses.append(_yaw_pose(x, y, yaw) @ cam.camera_to_base)
    kinv = np.linalg.inv(cam.k)
    done = 0
    for i in np.nonzero(vis0 & vis1 & vis2 & static)[0]:
        rays, origins = [], []
        for pose, xy in zip(poses[:2], (xy0, xy1), strict=True):
            d = pose[:3, :3] @ (kinv @ np.array([xy[i, 0] - 0.5, xy[i, 1] - 0.5, 1.0]))
            rays.append(d / np.linalg.norm(d))
            origins.append(pose[:3, 3])
        # closest point of the two rays (least squares)
        a = np.stack([rays[0], -rays[1]], axis=1)
        if np.linalg.cond(a) > 1e4:
            continue
        s = np.linalg.lstsq(a, origins[1] - origins[0], rcond=None)[0]
        world = 0.5 * (origins[0] + s[0] * rays[0] + origins[1] + s[1] * rays[1])
        assert np.abs(_pinhole(cam.k, poses[2], world) - xy2[i]).max() < 0.05
        done += 1
    assert done >= 3


def test_one_homography_is_wrong_almost_everywhere(drive: StreetDrive, frames: list) -> None:
    """Parallax: ground points follow one exact homography; all points together do not."""
    import cv2

    cam = drive.rig[0]
    ids, xy0, vis0 = frames[0].tracks[cam.name]
    xy1, vis1 = frames[6].tracks[cam.name][1][: ids.size], frames[6].tracks[cam.name][2][: ids.size]
    ground = frames[0].points[cam.name].plane == 0
    ok = vis0 & vis1

    def residuals(sel: np.ndarray) -> np.ndarray:
        hom, _ = cv2.findHomography(xy0[sel], xy1[sel], 0)
        pred = cv2.perspectiveTransform(xy0[sel][None].astype(np.float64), hom)[0]
        return np.asarray(np.linalg.norm(pred - xy1[sel], axis=1))

    assert (ok & ground).sum() >= 5 and (ok & ~ground).sum() >= 5
    assert residuals(ok & ground).max() < 0.05  # one plane: exact homography
    assert np.median(residuals(ok)) > 0.5  # several depths: off almost everywhere


def test_path_has_turns_stops_and_smooth_speed() -> None:
    path = make_path(np.random.default_rng(3), 120.0, 0.005)
    v = path.v_of_t
    accel = np.diff(v) / 0.005
    assert np.abs(accel).max() < 4.0
    assert (v == 0).any() and v.max() > 6.0
    rates = np.array([path.yaw_rate_at(t) for t in np.arange(0, 120, 0.5)])
    assert np.abs(rates).max() > 0.1 and (np.abs(rates) < 1e-3).any()
    assert np.abs(path.heading).max() <= math.radians(81)


def test_deterministic_by_seed() -> None:
    cfg = StreetConfig(seed=9, cameras=1, duration_s=1.0, width=64, height=48, points=8)
    a, b = list(StreetDrive(cfg).frames()), list(StreetDrive(cfg).frames())
    c = list(StreetDrive(StreetConfig(**{**cfg.__dict__, "seed": 10})).frames())
    for fa, fb in zip(a, b, strict=True):
        assert np.array_equal(fa.views["front"].rgb, fb.views["front"].rgb)
        assert np.array_equal(fa.tracks["front"][1], fb.tracks["front"][1])
    assert not np.array_equal(a[-1].views["front"].rgb, c[-1].views["front"].rgb)


@pytest.mark.parametrize("cameras", [1, 6])
def test_rig_sizes(cameras: int) -> None:
    rig = make_rig(cameras, 224, 224)
    assert len(rig) == cameras
    for cam in rig:  # optical z looks out horizontally, y down
        assert abs(cam.camera_to_base[2, 2]) < 1e-12 and cam.camera_to_base[2, 1] == -1.0
    with pytest.raises(RigError):
        make_rig(7)
