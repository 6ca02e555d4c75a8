"""Write generated street drives to rosbag2 (``rvm-ros make-street``).

One bag per drive (:class:`rvm_ros.street.StreetDrive`), deterministic in its seed:

* ``/<cam>/image_raw`` (``sensor_msgs/Image`` rgb8, frame ``<cam>_optical``) and
  ``/<cam>/camera_info`` (``sensor_msgs/CameraInfo``, plumb_bob, zero distortion);
* ``/<cam>/image_raw/gt_tracks`` (``rvm_ros/TrackedPoints``): ground-truth points in
  continuous pixel coordinates, every point from its seeding frame to the end, visible
  flags exact (inside, in front, not occluded);
* ``/tf_static``: ``base_link`` -> ``<cam>_optical`` for every camera (the rig);
* ``/tf`` and ``/odom`` (``nav_msgs/Odometry``, ``odom`` -> ``base_link``, with twist),
  at ``odom_hz``: the exact ego-motion the images were rendered with;
* beside the bag's files, ``rvm_params.yaml``: the node parameters that replay the bag
  with SceneTokens (cameras, topics, CameraInfo topics, static extrinsics), for
  ``rvm-ros replay BAG --config BAG/rvm_params.yaml``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rosbags.typesys.store import Typestore

from rvm_ros import fsutil
from rvm_ros.bags import rosbag2 as bags
from rvm_ros.bags.make_bag import DEFAULT_START_NS, image_message
from rvm_ros.rotations import matrix_to_quaternion
from rvm_ros.street.drive import DriveFrame, StreetConfig, StreetDrive
from rvm_ros.street.rig import RigCamera

__all__ = ["PARAMS_FILE", "StreetBag", "make_street", "make_streets", "street_params"]

PARAMS_FILE = "rvm_params.yaml"
ODOM_TOPIC = "/odom"
GT_SUFFIX = "/gt_tracks"


@dataclass(frozen=True)
class StreetBag:
    """What :func:`make_street` wrote."""

    bag: Path
    frames: int
    cameras: tuple[str, ...]
    points: int
    duration_s: float


def street_params(rig: list[RigCamera]) -> dict[str, object]:
    """Node parameters that replay a street bag with SceneTokens (static extrinsics)."""
    params: dict[str, object] = {
        "cameras": [c.name for c in rig],
        "scene_tokens.enabled": True,
        "scene_tokens.base_frame": "base_link",
    }
    for c in rig:
        params[f"cameras.{c.name}.topic"] = f"/{c.name}/image_raw"
        params[f"cameras.{c.name}.camera_info_topic"] = f"/{c.name}/camera_info"
        params[f"cameras.{c.name}.translation"] = [float(v) for v in c.camera_to_base[:3, 3]]
        params[f"cameras.{c.name}.rotation"] = list(matrix_to_quaternion(c.camera_to_base[:3, :3]))
    return params


class _Messages:
    """Message builders over one typestore (the messages are rosbags objects: ``object``)."""

    def __init__(self, store: Typestore) -> None:
        self.store = store
        self.t = store.types

    def header(self, t_ns: int, frame: str) -> bags.RosMessage:
        time = self.t["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
        return self.t["std_msgs/msg/Header"](stamp=time, frame_id=frame)

    def camera_info(self, cam: RigCamera, t_ns: int) -> bags.RosMessage:
        p = np.zeros((3, 4))
        p[:, :3] = cam.k
        roi = self.t["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        return self.t["sensor_msgs/msg/CameraInfo"](
            header=self.header(t_ns, cam.frame_id),
            height=cam.height,
            width=cam.width,
            distortion_model="plumb_bob",
            d=np.zeros(5),
            k=cam.k.ravel().copy(),
            r=np.eye(3).ravel(),
            p=p.ravel(),
            binning_x=0,
            binning_y=0,
            roi=roi,
        )

    def transform(self, t_ns: int, parent: str, child: str, m: np.ndarray) -> bags.RosMessage:
        t = self.t
        q = matrix_to_quaternion(m[:3, :3])
        tf = t["geometry_msgs/msg/Transform"](
            translation=t["geometry_msgs/msg/Vector3"](x=m[0, 3], y=m[1, 3], z=m[2, 3]),
            rotation=t["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        )
        return t["geometry_msgs/msg/TransformStamped"](
            header=self.header(t_ns, parent), child_frame_id=child, transform=tf
        )

    def tf(self, transforms: list[bags.RosMessage]) -> bags.RosMessage:
        return self.t["tf2_msgs/msg/TFMessage"](transforms=transforms)

    def odometry(self, t_ns: int, m: np.ndarray, speed: float, yaw_rate: float) -> bags.RosMessage:
        t = self.t
        q = matrix_to_quaternion(m[:3, :3])
        pose = t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=m[0, 3], y=m[1, 3], z=m[2, 3]),
            orientation=t["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        )
        vec = t["geometry_msgs/msg/Vector3"]
        twist = t["geometry_msgs/msg/Twist"](
            linear=vec(x=speed, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=yaw_rate)
        )
        return t["nav_msgs/msg/Odometry"](
            header=self.header(t_ns, "odom"),
            child_frame_id="base_link",
            pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
        )

    def points(
        self, t_ns: int, cam: RigCamera, seq: int, ids: np.ndarray, xy: np.ndarray, vis: np.ndarray
    ) -> bags.RosMessage:
        point = self.t[bags.TRACKED_POINT_TYPE]
        pts = [
            point(id=int(i), x=float(p[0]), y=float(p[1]), visible=bool(v), confidence=1.0)
            for i, p, v in zip(ids.tolist(), np.nan_to_num(xy), vis.tolist(), strict=True)
        ]
        return self.t[bags.TRACKED_POINTS_TYPE](
            header=self.header(t_ns, cam.frame_id), camera=cam.name, seq=seq, points=pts
        )


def _write_frame(
    w: bags.BagWriter, msgs: _Messages, drive: StreetDrive, f: DriveFrame, start_ns: int
) -> int:
    t_ns = start_ns + round(f.t * 1e9)
    points = 0
    for cam in drive.rig:
        msgtype, img = image_message(msgs.store, f.views[cam.name].rgb, t_ns, cam.frame_id)
        w.write(f"/{cam.name}/image_raw", msgtype, img, t_ns)
        w.write(
            f"/{cam.name}/camera_info",
            "sensor_msgs/msg/CameraInfo",
            msgs.camera_info(cam, t_ns),
            t_ns,
        )
        if cam.name in f.tracks:
            ids, xy, vis = f.tracks[cam.name]
            w.write(
                f"/{cam.name}/image_raw{GT_SUFFIX}",
                bags.TRACKED_POINTS_TYPE,
                msgs.points(t_ns, cam, f.index, ids, xy, vis),
                t_ns,
            )
            points = max(points, int(ids.size))
    return points


def _write_odometry(
    w: bags.BagWriter,
    msgs: _Messages,
    drive: StreetDrive,
    t0: float,
    t1: float,
    hz: float,
    start_ns: int,
) -> None:
    """Odometry and TF at ``hz`` for times in ``[t0, t1)``."""
    k0, k1 = math.ceil(t0 * hz - 1e-9), math.ceil(t1 * hz - 1e-9)
    for k in range(k0, k1):
        t = k / hz
        t_ns = start_ns + round(t * 1e9)
        m = drive.path.base_to_world(t)
        speed, rate = float(drive.path.speed_at(t)), drive.path.yaw_rate_at(t)
        w.write(ODOM_TOPIC, "nav_msgs/msg/Odometry", msgs.odometry(t_ns, m, speed, rate), t_ns)
        w.write(
            "/tf",
            "tf2_msgs/msg/TFMessage",
            msgs.tf([msgs.transform(t_ns, "odom", "base_link", m)]),
            t_ns,
        )


def make_street(
    out: Path | str,
    cfg: StreetConfig,
    storage: str = "mcap",
    odom_hz: float = 50.0,
    force: bool = False,
    start_ns: int = DEFAULT_START_NS,
    progress: Callable[[int], None] | None = None,
    photos: list[np.ndarray] | None = None,
) -> StreetBag:
    """Generate drive ``cfg`` and write it as a new rosbag2 at ``out``.

    Raises:
        OutputError: ``out`` exists without ``force``.
        RigError: A bad configuration.
    """
    drive = StreetDrive(cfg, photos)
    plan = fsutil.plan_output(out, (), force, what="output", keep_name=True)
    store = bags.typestore()
    msgs = _Messages(store)
    points = frames = 0
    try:
        with bags.BagWriter(plan.work, storage, store) as w:
            statics = [
                msgs.transform(start_ns, "base_link", c.frame_id, c.camera_to_base)
                for c in drive.rig
            ]
            w.write("/tf_static", "tf2_msgs/msg/TFMessage", msgs.tf(statics), start_ns)
            prev = -1.0 / odom_hz
            for f in drive.frames():
                _write_odometry(w, msgs, drive, prev + 1e-9, f.t + 1e-9, odom_hz, start_ns)
                prev = f.t
                points = max(points, _write_frame(w, msgs, drive, f, start_ns))
                frames += 1
                if progress is not None:
                    progress(1)
            # Odometry to 2.5 s past the last frame: every frame has its future poses.
            _write_odometry(w, msgs, drive, prev + 1e-9, prev + 2.5, odom_hz, start_ns)
        import yaml

        text = yaml.safe_dump(
            {"/**/rvm": {"ros__parameters": street_params(drive.rig)}}, sort_keys=False
        )
        (plan.work / PARAMS_FILE).write_text(text)
        (plan.work / "street.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n")
        plan.commit()
    except BaseException:
        plan.discard()
        raise
    return StreetBag(plan.final, frames, tuple(c.name for c in drive.rig), points, cfg.duration_s)


def _one(job: tuple[Path, StreetConfig, str, bool]) -> StreetBag:
    out, cfg, storage, force = job
    return make_street(out, cfg, storage, force=force)


def make_streets(
    out: Path | str,
    cfg: StreetConfig,
    drives: int,
    storage: str = "mcap",
    force: bool = False,
    workers: int = 1,
    on_done: Callable[[StreetBag], None] | None = None,
) -> list[StreetBag]:
    """``drives`` bags ``out/drive_<seed>`` with seeds ``cfg.seed .. cfg.seed + drives - 1``.

    Bags already there are kept unless ``force`` (so an interrupted run resumes).
    ``workers`` > 1 renders drives in parallel processes.
    """
    from dataclasses import replace

    root = Path(out)
    jobs, done = [], []
    for k in range(drives):
        c = replace(cfg, seed=cfg.seed + k)
        bag = root / f"drive_{c.seed:04d}"
        if (bag / "metadata.yaml").is_file() and not force:
            continue
        jobs.append((bag, c, storage, force))
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for res in pool.imap(_one, jobs):
                done.append(res)
                if on_done is not None:
                    on_done(res)
    else:
        for job in jobs:
            res = _one(job)
            done.append(res)
            if on_done is not None:
                on_done(res)
    return done
