"""Camera geometry through the preprocessing: a 3-D point lands in the cell the camera gives."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rvm_ros.imaging.preprocess import fit_geometry, preprocess
from rvm_ros.pipeline.geometry import (
    CameraIntrinsics,
    GeometryError,
    camera_geometry,
    invert_rigid,
    pose_matrix,
    project_points,
    projection_matrix,
)

# A forward-looking camera: optical z = base x, optical x = -base y, optical y = -base z.
R_BASE_CAM = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
Q_BASE_CAM = (-0.5, 0.5, -0.5, 0.5)  # (x, y, z, w) of R_BASE_CAM
T_BASE_CAM = np.array([1.5, 0.2, 1.6])
FX, FY, CX, CY = 500.0, 510.0, 320.3, 240.7
K = np.array([[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]])
POINTS = np.array([[10.0, 1.0, 0.5], [6.0, -2.0, 2.5], [25.0, 3.0, -1.0], [4.0, 0.3, 1.2]])


def camera_pixel(point_base: np.ndarray) -> tuple[float, float]:
    """The pinhole camera model by hand: base point -> OpenCV pixel (centres at integers)."""
    x, y, z = R_BASE_CAM.T @ (point_base - T_BASE_CAM)
    return FX * x / z + CX, FY * y / z + CY


def test_pose_matrix_of_the_quaternion_is_the_hand_rotation() -> None:
    t = pose_matrix(T_BASE_CAM, Q_BASE_CAM)
    np.testing.assert_allclose(t[:3, :3], R_BASE_CAM, atol=1e-12)
    np.testing.assert_allclose(t[:3, 3], T_BASE_CAM)
    np.testing.assert_allclose(invert_rigid(t) @ t, np.eye(4), atol=1e-12)


@pytest.mark.parametrize(
    ("translation", "rotation", "words"),
    [
        ([0, 0], [0, 0, 0, 1], "3 translation and 4 quaternion"),
        ([0, 0, 0], [0, 0, 0, 2], "not unit length"),
        ([0, 0, float("nan")], [0, 0, 0, 1], "finite"),
    ],
)
def test_bad_poses_are_refused(translation: list[float], rotation: list[float], words: str) -> None:
    with pytest.raises(GeometryError, match=words):
        pose_matrix(translation, rotation)


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "center_crop"])
@pytest.mark.parametrize(
    ("model_hw", "cell_size"), [((256, 256), 16), ((192, 320), 32), ((128, 128), 64)]
)
def test_projection_lands_in_the_cell_of_the_camera_pixel(
    mode: str, model_hw: tuple[int, int], cell_size: int
) -> None:
    """The goal: |cell(projection) - cell(camera pixel)| < 1e-3 cells, same cell index."""
    geometry = fit_geometry(480, 640, model_hw[0], model_hw[1], mode)
    intr = CameraIntrinsics(K, 640, 480, "plumb_bob", (0.1, -0.05, 0.0, 0.0, 0.0), "cam")
    scene = camera_geometry(
        intr, pose_matrix(T_BASE_CAM, Q_BASE_CAM), "static", geometry, cell_size
    )
    assert scene.valid and scene.extrinsics_source == "static"
    k4 = np.eye(4)
    k4[:3, :3] = scene.intrinsics_cell
    cell_projection = k4 @ invert_rigid(scene.camera_to_base)
    xy_cell, depth = project_points(cell_projection, POINTS)
    xy_net, _ = project_points(scene.projection, POINTS)
    assert (depth > 0).all()
    np.testing.assert_allclose(xy_net / cell_size, xy_cell, atol=1e-9)
    checked = 0
    for (gx, gy), point in zip(xy_cell, POINTS, strict=True):
        u, v = camera_pixel(point)
        # The FeatureMap geometry maps continuous image coordinates (centres at i + 0.5).
        ex, ey = geometry.image_to_grid(u + 0.5, v + 0.5, cell_size)
        assert abs(gx - ex) < 1e-3 and abs(gy - ey) < 1e-3
        row, col, valid = geometry.image_to_cell(u + 0.5, v + 0.5, cell_size)
        if valid:
            assert (int(np.floor(gy)), int(np.floor(gx))) == (row, col)
            checked += 1
    assert checked >= 2  # most points are in view (center_crop cuts some away)


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "center_crop"])
def test_network_intrinsics_match_the_preprocessed_pixels(mode: str) -> None:
    """Draw a blob where the camera sees a point; after preprocess() it sits where K_net says."""
    geometry = fit_geometry(480, 640, 256, 256, mode)
    intr = CameraIntrinsics(K, 640, 480)
    scene = camera_geometry(intr, pose_matrix(T_BASE_CAM, Q_BASE_CAM), "static", geometry, 16)
    point = np.array([10.0, 0.4, 1.0])
    u, v = camera_pixel(point)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float64)
    blob = np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * 4.0**2)).astype(np.float32)
    image = np.repeat(blob[:, :, None], 3, axis=2)
    out = preprocess(image, geometry, interpolation="linear")[:, :, 0].astype(np.float64)
    ny, nx = np.mgrid[0 : out.shape[0], 0 : out.shape[1]] + 0.5  # continuous pixel centres
    centroid = (float((out * nx).sum() / out.sum()), float((out * ny).sum() / out.sum()))
    (expected,), _ = project_points(scene.projection, point[None])
    assert abs(centroid[0] - expected[0]) < 0.05 and abs(centroid[1] - expected[1]) < 0.05


def test_camera_info_with_binning_and_roi() -> None:
    info = SimpleNamespace(
        k=K.ravel().tolist(),
        width=640,
        height=480,
        binning_x=2,
        binning_y=2,
        roi=SimpleNamespace(x_offset=64, y_offset=32, width=512, height=400),
        d=[0.0] * 5,
        distortion_model="plumb_bob",
        header=SimpleNamespace(frame_id="front_optical"),
    )
    intr = CameraIntrinsics.from_camera_info(info)
    assert (intr.width, intr.height, intr.frame_id) == (256, 200, "front_optical")
    u, v = camera_pixel(POINTS[0])  # full-resolution pixel
    p = intr.k @ (R_BASE_CAM.T @ (POINTS[0] - T_BASE_CAM))
    # Continuous coordinates: (u' + 0.5) = (u + 0.5 - offset) / binning.
    assert p[0] / p[2] + 0.5 == pytest.approx((u + 0.5 - 64) / 2, abs=1e-9)
    assert p[1] / p[2] + 0.5 == pytest.approx((v + 0.5 - 32) / 2, abs=1e-9)


def test_camera_info_without_focal_length_is_refused() -> None:
    info = SimpleNamespace(k=[0.0] * 9, width=640, height=480, d=[], distortion_model="")
    with pytest.raises(GeometryError, match="not a pinhole matrix"):
        CameraIntrinsics.from_camera_info(info)


@pytest.mark.parametrize(
    ("has_info", "info_size", "has_tf", "reason"),
    [
        (False, (480, 640), True, "no_camera_info"),
        (True, (240, 320), True, "camera_info_mismatch"),
        (True, (480, 640), False, "no_transform"),
    ],
)
def test_missing_geometry_is_nan_with_a_reason(
    has_info: bool, info_size: tuple[int, int], has_tf: bool, reason: str
) -> None:
    geometry = fit_geometry(480, 640, 256, 256, "letterbox")
    intr = CameraIntrinsics(K, info_size[1], info_size[0]) if has_info else None
    extr = pose_matrix(T_BASE_CAM, Q_BASE_CAM) if has_tf else None
    scene = camera_geometry(intr, extr, "tf", geometry, 16)
    assert scene.reason == reason and not scene.valid
    assert np.isnan(scene.projection).all()
    if reason == "no_transform":
        assert np.isfinite(scene.intrinsics_network).all()  # what is known is still given
        assert np.isnan(scene.camera_to_base).all() and scene.extrinsics_source == ""
    else:
        assert np.isnan(scene.intrinsics_network).all()


def test_projection_matrix_is_k_times_the_inverse_pose() -> None:
    t = pose_matrix(T_BASE_CAM, Q_BASE_CAM)
    p = projection_matrix(K, t)
    hom = np.append(POINTS[0], 1.0)
    q = p @ hom
    u, v = camera_pixel(POINTS[0])
    assert (q[0] / q[2], q[1] / q[2]) == pytest.approx((u, v), abs=1e-9)
    assert q[3] == 1.0
