"""make-street bags: topics, exact poses, and ground truth checked from the bag alone."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.cli import main
from rvm_ros.pipeline.geometry import pose_matrix


@pytest.fixture(scope="module")
def street_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("street") / "drive"
    code = main(
        [
            "make-street",
            "--out",
            str(out),
            "--seed",
            "4",
            "--duration",
            "1.5",
            "--cameras",
            "2",
            "--width",
            "96",
            "--height",
            "80",
            "--points",
            "40",
        ]
    )
    assert code == 0
    return out


def _stamp(h) -> int:
    return int(h.stamp.sec) * 10**9 + int(h.stamp.nanosec)


def _read(bag: Path) -> dict:
    out: dict = {"odom": {}, "static": {}, "info": {}, "gt": {}}
    with bags.BagReader(bag) as r:
        for m in r.messages():
            if m.topic == "/odom":
                p = m.msg.pose.pose
                out["odom"][_stamp(m.msg.header)] = pose_matrix(
                    (p.position.x, p.position.y, p.position.z),
                    (p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w),
                )
            elif m.topic == "/tf_static":
                for tf in m.msg.transforms:
                    t, q = tf.transform.translation, tf.transform.rotation
                    out["static"][tf.child_frame_id] = pose_matrix(
                        (t.x, t.y, t.z), (q.x, q.y, q.z, q.w)
                    )
            elif m.topic.endswith("/camera_info"):
                out["info"][m.msg.header.frame_id] = np.asarray(m.msg.k).reshape(3, 3)
            elif m.topic.endswith("/gt_tracks"):
                pts = m.msg.points
                out["gt"].setdefault(m.msg.header.frame_id, []).append(
                    (_stamp(m.msg.header), {p.id: (p.x, p.y, p.visible) for p in pts})
                )
    return out


def test_topics_and_replay_parameters(street_bag: Path) -> None:
    with bags.BagReader(street_bag) as r:
        topics = r.topics
    for cam in ("front", "front_left"):
        assert topics[f"/{cam}/image_raw"] == bags.IMAGE_TYPE
        assert topics[f"/{cam}/camera_info"] == "sensor_msgs/msg/CameraInfo"
        assert topics[f"/{cam}/image_raw/gt_tracks"] == bags.TRACKED_POINTS_TYPE
    assert topics["/odom"] == "nav_msgs/msg/Odometry"
    assert topics["/tf"] == topics["/tf_static"] == "tf2_msgs/msg/TFMessage"
    params = yaml.safe_load((street_bag / "rvm_params.yaml").read_text())["/**/rvm"]
    p = params["ros__parameters"]
    assert p["cameras"] == ["front", "front_left"] and p["scene_tokens.enabled"] is True
    from rvm_ros.pipeline.params import config_from_params

    cfg = config_from_params(p)
    assert sorted(cfg.scene_tokens.static_extrinsics) == ["front", "front_left"]


def test_ground_truth_reprojects_from_the_bag_alone(street_bag: Path) -> None:
    """Triangulate a ground point from two frames with /odom, /tf_static and CameraInfo;
    its projection in a third frame is its ground-truth pixel within 0.05 px."""
    data = _read(street_bag)
    frame = "front_optical"
    k, c2b = data["info"][frame], data["static"][frame]
    seq = data["gt"][frame]
    (t0, g0), (t1, g1), (t2, g2) = seq[0], seq[3], seq[6]
    poses = [data["odom"][t] @ c2b for t in (t0, t1, t2)]  # camera -> odom
    kinv = np.linalg.inv(k)
    near, far = 0, 0
    for pid, (x0, y0, v0) in g0.items():
        (x1, y1, v1), (x2, y2, v2) = g1[pid], g2[pid]
        if not (v0 and v1 and v2):
            continue
        rays, origins = [], []
        for pose, (x, y) in zip(poses[:2], ((x0, y0), (x1, y1)), strict=True):
            d = pose[:3, :3] @ (kinv @ np.array([x - 0.5, y - 0.5, 1.0]))
            rays.append(d / np.linalg.norm(d))
            origins.append(pose[:3, 3])
        a = np.stack([rays[0], -rays[1]], axis=1)
        if np.linalg.cond(a) > 1e3:  # too little baseline to fix the point
            continue
        s = np.linalg.lstsq(a, origins[1] - origins[0], rcond=None)[0]
        p0, p1 = origins[0] + s[0] * rays[0], origins[1] + s[1] * rays[1]
        world = 0.5 * (p0 + p1)
        if np.linalg.norm(p0 - p1) > 1e-3 or abs(world[2]) > 1e-4:
            # Only points on the ground (z = 0) are surely static: a car moving parallel
            # to the ego stays on its epipolar plane and triangulates to a wrong depth.
            far += 1
            continue
        cam = poses[2][:3, :3].T @ (world - poses[2][:3, 3])
        uv = (k @ cam)[:2] / cam[2] + 0.5
        assert abs(uv[0] - x2) < 0.05 and abs(uv[1] - y2) < 0.05
        near += 1
    assert near >= 3


def test_odometry_is_smooth_and_matches_twist(street_bag: Path) -> None:
    """Positions advance by the published speed (finite differences, 50 Hz)."""
    with bags.BagReader(street_bag) as r:
        msgs = [m.msg for m in r.messages(["/odom"])]
    for a, b in itertools.pairwise(msgs):
        dt = (_stamp(b.header) - _stamp(a.header)) / 1e9
        dx = b.pose.pose.position.x - a.pose.pose.position.x
        dy = b.pose.pose.position.y - a.pose.pose.position.y
        v = 0.5 * (a.twist.twist.linear.x + b.twist.twist.linear.x)
        assert math.hypot(dx, dy) == pytest.approx(v * dt, abs=2e-3)


def test_make_street_refuses_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["make-street", "--out", str(tmp_path / "x"), "--cameras", "7"]) == 2
    assert "--cameras must be between 1 and 6" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
