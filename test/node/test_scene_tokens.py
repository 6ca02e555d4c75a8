"""~/scene_tokens of rvm_node in its own process: three cameras with CameraInfo and static
extrinsics over real rclpy / Fast DDS.

Checked: camera order (the configured one, not the arrival order), per-camera stamps and
the step stamp, validity, tokens equal to each camera's own FeatureMap, the projection of
known 3-D points into the feature cell a hand computation gives, and a missing camera
(invalid, zero tokens: its previous tokens are not reused), plus the diagnostics counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rvm_ros.msg")

from diagnostic_msgs.msg import DiagnosticArray
from node_harness import NodeProcess, RosPeer, diag_values, image_msg, pick_domain_id, wait_until
from rvm_ros.msg import FeatureMap, SceneTokens
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from rvm_ros.wire.scene_tokens import scene_tokens_to_torch

pytestmark = pytest.mark.ros

S = 1_000_000_000
MS = 1_000_000
CAMERAS = ["front", "right", "left"]  # configured order (not alphabetical)
# Camera-to-base poses (optical frames: z forward, x right, y down), quaternion x, y, z, w.
POSES = {
    "front": ([1.0, 0.0, 1.5], [-0.5, 0.5, -0.5, 0.5]),  # looks along +x
    "left": ([0.5, 0.8, 1.5], [-0.7071067811865476, 0.0, 0.0, 0.7071067811865476]),  # +y
    "right": ([0.5, -0.8, 1.5], [0.0, 0.7071067811865476, -0.7071067811865476, 0.0]),  # -y
}
DISTORTION = {
    "front": ("plumb_bob", [0.1, -0.02, 0.0, 0.0, 0.0]),
    "right": ("equidistant", [0.01, 0.002, 0.0, 0.0]),
    "left": ("plumb_bob", [0.0] * 5),
}
# 64x48 images, f = 40 px, principal point at the image centre (OpenCV convention).
K = [40.0, 0.0, 31.5, 0.0, 40.0, 23.5, 0.0, 0.0, 1.0]


def camera_info(cam: str) -> CameraInfo:
    msg = CameraInfo()
    msg.header = Header(frame_id=f"{cam}_optical")
    msg.width, msg.height = 64, 48
    msg.k = K
    msg.distortion_model, msg.d = DISTORTION[cam]
    return msg


class Env:
    def __init__(self, node: NodeProcess, peer: RosPeer) -> None:
        self.node, self.peer = node, peer
        self.scene = peer.collect(SceneTokens, "/rvm/scene_tokens")
        self.features = {c: peer.collect(FeatureMap, f"/rvm/{c}/features") for c in CAMERAS}
        self.diag = peer.collect(DiagnosticArray, "/diagnostics")
        self.images = {c: peer.publisher(Image, f"/{c}/image_raw") for c in CAMERAS}
        self.infos = {c: peer.publisher(CameraInfo, f"/{c}/camera_info") for c in CAMERAS}

    def send(self, stamps: dict[str, int], timeout: float = 60.0) -> Any:
        """Publish CameraInfo + image of each camera (in dict order); wait for the step."""
        for k, (cam, t) in enumerate(stamps.items()):
            self.infos[cam].publish(camera_info(cam))
            self.images[cam].publish(image_msg(t, f"{cam}_img", 48, 64, seed=k + t % 97))
        first = min(stamps.values())
        return wait_until(
            lambda: [m for m in self.scene.msgs if m.geometry and _stamp(m.header) >= first],
            timeout,
            what=f"SceneTokens for stamps {stamps}",
        )[-1]


def _stamp(header: Any) -> int:
    return int(header.stamp.sec) * S + int(header.stamp.nanosec)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("scene_tokens")
    lines = [
        "rvm:",
        "  ros__parameters:",
        "    checkpoint: random:tiny",
        "    backend: torch",
        f"    cameras: [{', '.join(CAMERAS)}]",
        "    model_height: 64",
        "    model_width: 64",
        "    resize_mode: letterbox",
        "    tracking: false",
        "    publish_debug_image: false",
        "    input_reliability: reliable",
        "    max_batch_wait_ms: 400.0",
        "    diagnostics_period_s: 0.2",
        "    scene_tokens.enabled: true",
        "    scene_tokens.tolerance_ms: 20.0",
        "    scene_tokens.extrinsics: static",
    ]
    for cam, (t, q) in POSES.items():
        lines.append(f"    cameras.{cam}.translation: {t}")
        lines.append(f"    cameras.{cam}.rotation: {q}")
    params = tmp / "params.yaml"
    params.write_text("\n".join(lines) + "\n")
    domain = pick_domain_id(__name__)
    node = NodeProcess(["--params-file", str(params)], domain, tmp / "rvm_node.log")
    peer = RosPeer(domain)
    try:
        node.wait_log("autostart: active")
        e = Env(node, peer)
        for pub in [*e.images.values(), *e.infos.values()]:
            peer.wait_matched(pub)
        wait_until(
            lambda: peer.node.count_publishers("/rvm/scene_tokens") > 0,
            what="the ~/scene_tokens publisher",
        )
        # Warm-up steps until one arrives (discovery of ~/scene_tokens may lag behind the
        # images'); CameraInfo and images travel on different topics, so a warm-up step
        # may still lack a CameraInfo; the steps of the tests must not.
        for k in range(10):
            try:
                e.send({c: (10 + k) * S + i * MS for i, c in enumerate(CAMERAS)}, timeout=5.0)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError(f"no SceneTokens in 10 warm-up steps:\n{node.log()}")
        yield e
    finally:
        peer.close()
        code = node.stop()
        assert code == 0, node.log()


def test_complete_step_order_stamps_tokens_and_geometry(env: Env) -> None:
    t = 20 * S
    # Published in another order than configured; stamps 2 ms apart.
    stamps = {"left": t + 4 * MS, "front": t, "right": t + 2 * MS}
    msg = env.send(stamps)
    assert _stamp(msg.header) == t + 2 * MS  # lower median of the three stamps
    assert msg.header.frame_id == "base_link" and list(msg.cameras) == CAMERAS
    assert msg.complete, [(g.camera, g.invalid_reason) for g in msg.geometry]
    assert (msg.grid_height, msg.grid_width, msg.cell_size) == (4, 4, 16)
    assert msg.dtype == SceneTokens.DTYPE_FLOAT16
    for g in msg.geometry:
        assert g.valid and g.has_tokens and g.extrinsics_source == "static"
        assert _stamp(g.header) == stamps[g.camera]
        assert g.header.frame_id == f"{g.camera}_optical"  # from CameraInfo
        assert (g.image_width, g.image_height, g.resize_mode) == (64, 48, "letterbox")
        assert g.distortion_model == DISTORTION[g.camera][0]
        np.testing.assert_allclose(g.distortion, DISTORTION[g.camera][1])
    batch = scene_tokens_to_torch(msg, "cpu")
    feats = batch["img_feats"]
    assert feats.shape == (3, 64, 4, 4) and batch["cls"].shape == (3, 64)
    assert batch["valid"].tolist() == [True, True, True]
    # Each row is that camera's own FeatureMap of the same stamp.
    for i, cam in enumerate(CAMERAS):
        fmap = env.features[cam].wait_stamp(stamps[cam])
        f16 = np.frombuffer(bytes(fmap.features), "<f2").reshape(4, 4, 64)
        np.testing.assert_array_equal(feats[i].permute(1, 2, 0).numpy(), f16)
        np.testing.assert_array_equal(
            batch["cls"][i].numpy(), np.frombuffer(bytes(fmap.cls_token), "<f2")
        )


@pytest.mark.parametrize(
    ("cam", "point", "cell"),
    [
        # front at (1, 0, 1.5) looking +x: the point is (0.5 right, 0.5 down, 10 ahead) in its
        # optical frame -> OpenCV pixel (40 * 0.05 + 31.5, 40 * 0.05 + 23.5) = (33.5, 25.5),
        # continuous (34, 26); letterbox 64x48 -> 64x64: scale 1, offset (0, 8) -> network
        # (34, 34) -> cells (2.125, 2.125): row 2, column 2.
        ("front", (11.0, -0.5, 1.0), (2.125, 2.125)),
        # left at (0.5, 0.8, 1.5) looking +y: optical (-0.8, -0.4, 5) -> pixel (25.1, 20.3),
        # continuous (25.6, 20.8) -> network (25.6, 28.8) -> cells (1.6, 1.8): row 1, col 1.
        ("left", (-0.3, 5.8, 1.9), (1.6, 1.8)),
    ],
)
def test_projection_puts_a_known_point_in_its_cell(
    env: Env, cam: str, point: tuple[float, float, float], cell: tuple[float, float]
) -> None:
    msg = env.send({c: 30 * S + i * MS for i, c in enumerate(CAMERAS)})
    i = list(msg.cameras).index(cam)
    g = msg.geometry[i]
    assert g.valid
    p = np.asarray(g.projection).reshape(4, 4) @ np.array([*point, 1.0])
    x, y = p[0] / p[2], p[1] / p[2]  # network pixels
    assert (x / g.cell_size, y / g.cell_size) == pytest.approx(cell, abs=1e-3)
    k_cell = np.asarray(g.intrinsics_cell).reshape(3, 3)
    t_cb = np.asarray(g.camera_to_base).reshape(4, 4)
    cam_pt = t_cb[:3, :3].T @ (np.array(point) - t_cb[:3, 3])
    q = k_cell @ cam_pt
    assert (q[0] / q[2], q[1] / q[2]) == pytest.approx(cell, abs=1e-3)
    batch = scene_tokens_to_torch(msg, "cpu")
    np.testing.assert_allclose(batch["projection_mat"][i].numpy(), np.reshape(g.projection, (4, 4)),
                               rtol=1e-6)  # fmt: skip
    assert batch["image_wh"][i].tolist() == [64.0, 64.0]


def test_missing_camera_is_invalid_and_not_reused(env: Env) -> None:
    env.send({c: 40 * S + i * MS for i, c in enumerate(CAMERAS)})  # right has tokens here
    t = 41 * S
    msg = env.send({"front": t, "left": t + MS})  # no right image in this step
    assert _stamp(msg.header) == t and not msg.complete
    g = {x.camera: x for x in msg.geometry}
    assert (g["right"].valid, g["right"].invalid_reason, g["right"].has_tokens) == (
        False,
        "missing",
        False,
    )
    assert _stamp(g["right"].header) == 0
    assert g["front"].valid and g["left"].valid
    batch = scene_tokens_to_torch(msg, "cpu")
    assert batch["valid"].tolist() == [True, False, True]
    assert (batch["img_feats"][1] == 0).all() and (batch["cls"][1] == 0).all()
    assert (batch["img_feats"][0] != 0).any()

    def scene_status() -> dict[str, str] | None:
        for m in reversed(env.diag.msgs):
            values = diag_values(m, ": scene_tokens")
            if values is not None and int(values["partial_steps"]) >= 1:
                return values
        return None

    values = wait_until(scene_status, what="scene_tokens diagnostics with a partial step")
    assert int(values["complete_steps"]) >= 2
    assert "missing=" in values["invalid_right"]
