"""SceneTokens: step -> message -> CDR bytes -> message -> planner tensors (rosbags classes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.imaging.preprocess import fit_geometry
from rvm_ros.pipeline.geometry import CameraIntrinsics, pose_matrix
from rvm_ros.pipeline.scene import SceneAssembler
from rvm_ros.pipeline.types import FrameResult
from rvm_ros.wire.scene_tokens import (
    SceneTokensClasses,
    SceneTokensError,
    scene_tokens_message,
    scene_tokens_to_numpy,
    scene_tokens_to_torch,
)

CAMS = ("front", "left", "right")
MS = 1_000_000
K = np.array([[50.0, 0, 32.0], [0, 50.0, 24.0], [0, 0, 1]])


@pytest.fixture(scope="module")
def store():
    return bags.typestore()


@pytest.fixture(scope="module")
def classes(store) -> SceneTokensClasses:
    t = store.types
    return SceneTokensClasses(
        t[bags.SCENE_TOKENS_TYPE],
        t["rvm_ros/msg/CameraGeometry"],
        t["std_msgs/msg/Header"],
        t["builtin_interfaces/msg/Time"],
        rclpy=False,
    )


def result(cam: str, stamp_ns: int, seed: int, dtype: type, grid: tuple[int, int]) -> FrameResult:
    rng = np.random.default_rng(seed)
    h, w = grid
    return FrameResult(
        camera=cam,
        header=None,
        stamp_ns=stamp_ns,
        seq=0,
        features=rng.standard_normal((h, w, 6)).astype(dtype),
        cls=rng.standard_normal(6).astype(dtype),
        grid_height=h,
        grid_width=w,
        frames_since_reset=0,
        state_reset=True,
        reset_reason="first_frame",
        reset_count=1,
        geometry=fit_geometry(48, 64, 16 * h, 16 * w, "letterbox"),
        cell_size=16,
        pool=1,
        model_id="tiny-random0",
        step_ms=1.0,
    )


def make_step(dtype: type, grid: tuple[int, int] = (3, 4), missing: str | None = None):
    asm = SceneAssembler(CAMS, 16 * grid[0], 16 * grid[1], 16, "partial", 20.0, "letterbox")
    for i, cam in enumerate(CAMS):
        asm.set_intrinsics(cam, CameraIntrinsics(K, 64, 48, "plumb_bob", (0.1, 0.0, 0, 0, 0)))
        asm.set_extrinsics(cam, pose_matrix([0.5 * i, 0, 1.5], [-0.5, 0.5, -0.5, 0.5]))
    outs = [result(c, (100 + i) * MS, i, dtype, grid) for i, c in enumerate(CAMS) if c != missing]
    step = asm.assemble(outs, {c: f"{c}_optical" for c in CAMS})
    assert step is not None
    return step, {o.camera: o for o in outs}


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_round_trip_through_cdr_to_planner_tensors(store, classes, dtype: type) -> None:
    step, outs = make_step(dtype)
    msg = scene_tokens_message(classes, step, "base_link")
    raw = store.serialize_cdr(msg, bags.SCENE_TOKENS_TYPE)
    back = store.deserialize_cdr(raw, bags.SCENE_TOKENS_TYPE)
    assert back.header.frame_id == "base_link" and list(back.cameras) == list(CAMS)
    assert back.complete and back.geometry[0].distortion_model == "plumb_bob"
    batch = scene_tokens_to_torch(back, "cpu")
    feats, cls = batch["img_feats"], batch["cls"]
    assert feats.shape == (3, 6, 3, 4) and cls.shape == (3, 6)
    assert feats.dtype == (torch.float16 if dtype is np.float16 else torch.float32)
    for i, cam in enumerate(CAMS):
        out = outs[cam]
        np.testing.assert_array_equal(feats[i].permute(1, 2, 0).numpy(), out.features)
        np.testing.assert_array_equal(cls[i].numpy(), out.cls)
    # Zero copy: the tensors share the message payload.
    payload = back.tokens
    assert np.shares_memory(feats.numpy(), payload) and np.shares_memory(cls.numpy(), payload)
    np.testing.assert_array_equal(
        batch["projection_mat"].numpy(), np.stack([c.scene.projection for c in step.cameras])
    )
    assert batch["projection_mat"].dtype == torch.float32
    np.testing.assert_array_equal(batch["image_wh"].numpy(), [[64, 48]] * 3)
    assert batch["timestamp"].item() == pytest.approx(101 * MS / 1e9)
    assert batch["valid"].tolist() == [True] * 3 and batch["cameras"] == CAMS
    arrays = scene_tokens_to_numpy(back)
    np.testing.assert_array_equal(arrays.camera_stamps_ns, [100 * MS, 101 * MS, 102 * MS])
    np.testing.assert_allclose(
        arrays.intrinsics_cell[1], step.cameras[1].scene.intrinsics_cell, rtol=0, atol=0
    )


def test_missing_camera_is_invalid_with_zero_tokens(store, classes) -> None:
    step, _ = make_step(np.float16, missing="left")
    msg = store.deserialize_cdr(
        store.serialize_cdr(
            scene_tokens_message(classes, step, "base_link"), bags.SCENE_TOKENS_TYPE
        ),
        bags.SCENE_TOKENS_TYPE,
    )
    assert not msg.complete
    g = msg.geometry[1]
    assert (g.valid, g.invalid_reason, g.has_tokens) == (False, "missing", False)
    assert g.header.stamp.sec == 0 and g.header.stamp.nanosec == 0
    batch = scene_tokens_to_torch(msg, "cpu", dtype=torch.float32)
    assert batch["valid"].tolist() == [True, False, True]
    assert (batch["img_feats"][1] == 0).all() and batch["img_feats"].dtype == torch.float32


def test_bad_messages_are_refused(store, classes) -> None:
    step, _ = make_step(np.float32)
    msg = scene_tokens_message(classes, step, "base_link")
    msg.tokens = msg.tokens[:-4]
    with pytest.raises(SceneTokensError, match="expected"):
        scene_tokens_to_numpy(msg)
    msg = scene_tokens_message(classes, step, "base_link")
    msg.dtype = 7
    with pytest.raises(SceneTokensError, match="unknown dtype 7"):
        scene_tokens_to_numpy(msg)
    msg = scene_tokens_message(classes, step, "base_link")
    msg.cameras = ["front", "right", "left"]
    with pytest.raises(SceneTokensError, match="do not match"):
        scene_tokens_to_numpy(msg)
