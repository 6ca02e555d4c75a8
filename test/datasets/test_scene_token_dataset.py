"""SceneTokenDataset over a real replay of a bag with three cameras, CameraInfo and odometry.

The bag is written with rosbags (images, CameraInfo, nav_msgs/Odometry), replayed with
``scene_tokens.enabled`` and static extrinsics (tiny random model), and the dataset's
samples are checked against the replay's own FeatureMaps and against the analytic ego
motion: x = 2 t m, yaw = 0.1 t rad (linear position and constant yaw rate, so the
dataset's interpolation must reproduce it to rounding).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.datasets import DatasetError, SceneTokenDataset
from rvm_ros.replay import ReplaySettings, replay

S = 1_000_000_000
MS = 1_000_000
T0 = 100 * S
CAMERAS = ("front", "left", "right")
STEPS = 8  # 10 Hz
MISSING = ("right", 5)  # right has no frame at step 5
ODOM_END_S = 1.0  # odometry from T0 - 0.5 s to T0 + 1.0 s, 50 Hz
K = np.array([40.0, 0, 31.5, 0, 40.0, 23.5, 0, 0, 1])


def _header(store, t_ns: int, frame: str):
    return store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=t_ns // S, nanosec=t_ns % S),
        frame_id=frame,
    )


def _camera_info(store, t_ns: int, cam: str):
    t = store.types
    return t["sensor_msgs/msg/CameraInfo"](
        header=_header(store, t_ns, f"{cam}_optical"),
        height=48,
        width=64,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=K.copy(),
        r=np.eye(3).ravel(),
        p=np.zeros(12),
        binning_x=0,
        binning_y=0,
        roi=t["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def _odometry(store, t_ns: int):
    t = store.types
    s = (t_ns - T0) / S
    yaw = 0.1 * s
    pose = t["geometry_msgs/msg/Pose"](
        position=t["geometry_msgs/msg/Point"](x=2.0 * s, y=0.0, z=0.0),
        orientation=t["geometry_msgs/msg/Quaternion"](
            x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)
        ),
    )
    vec = t["geometry_msgs/msg/Vector3"]
    return t["nav_msgs/msg/Odometry"](
        header=_header(store, t_ns, "odom"),
        child_frame_id="base_link",
        pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=vec(x=2.0, y=0.0, z=0.0),
                                               angular=vec(x=0.0, y=0.0, z=0.1)),
            covariance=np.zeros(36),
        ),
    )  # fmt: skip


def _image(store, t_ns: int, cam: str, seed: int):
    rgb = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return store.types[bags.IMAGE_TYPE](
        header=_header(store, t_ns, f"{cam}_img"),
        height=48,
        width=64,
        encoding="rgb8",
        is_bigendian=0,
        step=64 * 3,
        data=rgb.reshape(-1),
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("scene_dataset")
    store = bags.typestore()
    bag = tmp / "drive"
    items = []
    for k in range(-25, round(ODOM_END_S * 50) + 1):
        t = T0 + k * 20 * MS
        items.append((t, "/odom", "nav_msgs/msg/Odometry", _odometry(store, t)))
    for step in range(STEPS):
        for i, cam in enumerate(CAMERAS):
            if (cam, step) == MISSING:
                continue
            t = T0 + step * 100 * MS + i * MS
            items.append((t, f"/{cam}/camera_info", "sensor_msgs/msg/CameraInfo",
                          _camera_info(store, t, cam)))  # fmt: skip
            items.append((t, f"/{cam}/image_raw", bags.IMAGE_TYPE, _image(store, t, cam, step)))
    items.sort(key=lambda x: x[0])
    with bags.BagWriter(bag, "mcap", store) as writer:
        for t, topic, msgtype, msg in items:
            writer.write(topic, msgtype, msg, t)
    params = {
        "cameras": list(CAMERAS),
        "model_height": 64,
        "model_width": 64,
        "resize_mode": "letterbox",
        "tracking": False,
        "max_batch_wait_ms": 20.0,
        "scene_tokens.enabled": True,
        "scene_tokens.extrinsics": "static",
    }
    for cam in CAMERAS:
        params[f"cameras.{cam}.topic"] = f"/{cam}/image_raw"
        params[f"cameras.{cam}.translation"] = [1.0, 0.0, 1.5]
        params[f"cameras.{cam}.rotation"] = [-0.5, 0.5, -0.5, 0.5]
    settings = ReplaySettings(
        params=params, checkpoint="random:tiny", backend="torch", progress=False, visuals=False
    )
    outcome = replay([bag], tmp / "out", settings)
    assert outcome.complete, outcome.report
    return outcome.out_dir


def test_replay_writes_one_scene_message_per_step(replayed: Path) -> None:
    import json

    report = json.loads((replayed / "report.json").read_text())
    section = report["bags"][0] if "bags" in report else report
    scene = section["scene_tokens"]
    assert (scene["complete_steps"], scene["partial_steps"]) == (STEPS - 1, 1)
    assert scene["invalid"] == {"right": {"missing": 1}}
    assert scene["cameras_without_camera_info"] == []


def test_samples_are_the_replayed_tokens_with_ego_targets(replayed: Path) -> None:
    ds = SceneTokenDataset(replayed, pose_topic="/odom", horizon_s=0.4, horizon_steps=2)
    assert len(ds) == STEPS
    expected_stamps = [T0 + k * 100 * MS + MS for k in range(STEPS)]  # lower median
    expected_stamps[MISSING[1]] = T0 + MISSING[1] * 100 * MS  # median of front, left
    np.testing.assert_array_equal(ds.stamps_ns, expected_stamps)
    # The tokens are the replay's own FeatureMaps (read independently from the same bag).
    store = bags.typestore()
    fmaps = {}
    with bags.BagReader(replayed / "features") as reader:
        for m in reader.messages([f"/rvm/{c}/features" for c in CAMERAS]):
            stamp = m.msg.header.stamp.sec * S + m.msg.header.stamp.nanosec
            fmaps[(m.msg.camera, stamp)] = m.msg
    del store
    for index in range(STEPS):
        sample = ds[index]
        assert sample["img_feats"].shape == (3, 64, 4, 4)
        assert sample["projection_mat"].shape == (3, 4, 4)
        assert sample["timestamp"].item() == pytest.approx(expected_stamps[index] / S)
        valid = [not (c == MISSING[0] and index == MISSING[1]) for c in CAMERAS]
        assert sample["valid"].tolist() == valid
        for i, cam in enumerate(CAMERAS):
            if not valid[i]:
                assert (sample["img_feats"][i] == 0).all()
                continue
            fm = fmaps[(cam, T0 + index * 100 * MS + i * MS)]
            feats = np.frombuffer(fm.features.tobytes(), "<f2").reshape(4, 4, 64)
            np.testing.assert_array_equal(sample["img_feats"][i].permute(1, 2, 0).numpy(), feats)
        # Ego pose at the step stamp, and the future over 0.4 s in two steps.
        s = (expected_stamps[index] - T0) / S
        assert bool(sample["ego_valid"])
        pose = sample["ego_pose"].numpy()
        assert pose[0] == pytest.approx(2 * s, abs=1e-9)
        assert 2 * math.atan2(pose[5], pose[6]) == pytest.approx(0.1 * s, abs=1e-9)
        for j, dt in enumerate((0.2, 0.4)):
            covered = s + dt <= ODOM_END_S + 1e-9
            assert bool(sample["future_valid"][j]) == covered
            if covered:
                yaw = 0.1 * s
                want = (2 * dt * math.cos(yaw), -2 * dt * math.sin(yaw), 0.1 * dt)
                np.testing.assert_allclose(sample["future_trajectory"][j].numpy(), want, atol=1e-5)
            else:
                assert torch.isnan(sample["future_trajectory"][j]).all()
    # Odometry ends at 1.0 s: from the last step (0.701 s) 0.2 s ahead is covered, 0.4 s not.
    assert ds[STEPS - 1]["future_valid"].tolist() == [True, False]
    ds.close()


def test_dataloader_batches_steps(replayed: Path) -> None:
    ds = SceneTokenDataset(replayed / "features")  # a features bag directly, no poses
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=None)
    batch = next(iter(loader))
    assert batch["img_feats"].shape == (4, 3, 64, 4, 4)
    assert batch["valid"].shape == (4, 3) and "ego_pose" not in batch


def test_errors(replayed: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="pose topic /nope not found"):
        SceneTokenDataset(replayed, pose_topic="/nope")
    with pytest.raises(DatasetError, match="neither a replay output nor a bag"):
        SceneTokenDataset(tmp_path)
    with pytest.raises(DatasetError, match="horizon_s must be > 0"):
        SceneTokenDataset(replayed, horizon_s=0.0)
    with pytest.raises(DatasetError, match="is sensor_msgs/msg/CameraInfo, expected"):
        SceneTokenDataset(replayed, pose_topic="/front/camera_info")
