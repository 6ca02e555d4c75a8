"""`SceneTokenDataset`: the SceneTokens of replayed drives as planner-head training samples.

``rvm-ros replay`` with ``scene_tokens.enabled`` writes one ``/<node>/scene_tokens``
message per step into its features bag. This dataset indexes those messages (stamps
only, read from the CDR header; the tokens are read when a sample is asked for, so a
long drive does not have to fit in memory) and yields per step the dict of
:func:`rvm_ros.wire.scene_tokens.scene_tokens_to_torch` (``img_feats``, ``cls``,
``projection_mat``, ``image_wh``, ``timestamp``, ``valid``, ...), plus, with an ego-pose
topic (``nav_msgs/Odometry`` or ``geometry_msgs/PoseStamped``, looked up in the features
bag and then in the replayed input bag named in ``report.json``):

* ``ego_pose`` ``[7]`` float64: ``x, y, z, qx, qy, qz, qw`` of the pose topic's frame
  interpolated to the step stamp (linear position, spherical rotation);
* ``future_poses`` ``[K, 7]``: the same at ``stamp + k * horizon_s / K``, k = 1..K;
* ``future_trajectory`` ``[K, 3]`` float32: ``x, y, yaw`` of each future pose in the
  current ego frame (x forward, y left, radians): the usual planner target;
* ``ego_valid`` (bool) and ``future_valid`` ``[K]``: False where the poses do not cover
  the time (never extrapolated; such entries are NaN).

Paths: a replay output folder (``DIR`` with ``features/``, or with one sub-folder per bag),
or a features bag itself.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rosbags.rosbag2 import Reader
from torch.utils.data import Dataset

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.errors import RvmRosError
from rvm_ros.imaging.cdr import cdr_header_ns
from rvm_ros.rotations import quaternion_to_matrix, quaternion_yaw
from rvm_ros.stamps import header_ns
from rvm_ros.wire.scene_tokens import scene_tokens_to_torch

__all__ = ["POSE_TYPES", "DatasetError", "PoseTrack", "SceneTokenDataset"]

ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
POSE_STAMPED_TYPE = "geometry_msgs/msg/PoseStamped"
#: Ego-pose message types understood.
POSE_TYPES: tuple[str, ...] = (ODOMETRY_TYPE, POSE_STAMPED_TYPE)


class DatasetError(RvmRosError):
    """A dataset cannot be built (no SceneTokens, missing pose topic, bad arguments)."""

    cause = "invalid_dataset"


def _slerp(q0: np.ndarray, q1: np.ndarray, w: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (x, y, z, w) at fraction ``w``."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        out = q0 + w * (q1 - q0)
        return np.asarray(out / np.linalg.norm(out))
    theta = math.acos(min(1.0, dot))
    s = math.sin(theta)
    return np.asarray((math.sin((1 - w) * theta) * q0 + math.sin(w * theta) * q1) / s)


@dataclass(frozen=True, eq=False)
class PoseTrack:
    """Time-sorted poses of one topic.

    Attributes:
        stamps_ns: ``[M]`` int64 header stamps, increasing.
        poses: ``[M, 7]`` float64 ``x, y, z, qx, qy, qz, qw``.
        frame_id: The poses' frame (header frame id).
    """

    stamps_ns: np.ndarray
    poses: np.ndarray
    frame_id: str

    def at(self, t_ns: int) -> np.ndarray | None:
        """The pose interpolated at ``t_ns``, or None outside ``[first, last]``."""
        ts = self.stamps_ns
        if ts.size == 0 or t_ns < ts[0] or t_ns > ts[-1]:
            return None
        i = int(np.searchsorted(ts, t_ns, side="right")) - 1
        if i >= ts.size - 1 or ts[i] == t_ns:
            return np.asarray(self.poses[i].copy())
        w = (t_ns - ts[i]) / float(ts[i + 1] - ts[i])
        p0, p1 = self.poses[i], self.poses[i + 1]
        out = np.empty(7)
        out[:3] = p0[:3] + w * (p1[:3] - p0[:3])
        out[3:] = _slerp(p0[3:], p1[3:], w)
        return out


def read_pose_track(bag: Path, topic: str) -> PoseTrack | None:
    """The poses of ``topic`` in ``bag`` (None when the bag has no such pose topic).

    Raises:
        DatasetError: The topic exists with a type other than :data:`POSE_TYPES`.
    """
    reader = bags.BagReader(bag)
    try:
        msgtype = reader.topics.get(topic)
        if msgtype is None:
            return None
        if msgtype not in POSE_TYPES:
            raise DatasetError(
                f"pose topic {topic} in {bag} is {msgtype}, expected one of {', '.join(POSE_TYPES)}"
            )
        stamps, poses, frame = [], [], ""
        for m in reader.messages([topic]):
            if m.msg is None:
                continue
            pose = m.msg.pose.pose if msgtype == ODOMETRY_TYPE else m.msg.pose
            p, q = pose.position, pose.orientation
            stamps.append(header_ns(m.msg.header))
            poses.append([p.x, p.y, p.z, q.x, q.y, q.z, q.w])
            frame = frame or str(m.msg.header.frame_id)
    finally:
        reader.close()
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    return PoseTrack(
        np.asarray(stamps, dtype=np.int64)[order],
        np.asarray(poses, dtype=np.float64).reshape(-1, 7)[order],
        frame,
    )


@dataclass(frozen=True)
class _Segment:
    bag: Path
    topic: str
    log_times: np.ndarray  # int64 [n]
    stamps: np.ndarray  # int64 [n]
    poses: PoseTrack | None


def _scene_topic(reader: bags.BagReader, topic: str | None, bag: Path) -> str | None:
    found = sorted(t for t, ty in reader.topics.items() if ty == bags.SCENE_TOKENS_TYPE)
    if topic is not None:
        return topic if topic in found else None
    if len(found) > 1:
        raise DatasetError(f"{bag} has several SceneTokens topics ({', '.join(found)}); pick one")
    return found[0] if found else None


def _features_bags(path: Path) -> list[tuple[Path, Path | None]]:
    """``(features bag, its report.json or None)`` for a replay output or a bag."""
    if (path / "metadata.yaml").is_file() or path.suffix in (".mcap", ".db3"):
        return [(path, None)]
    if (path / "features").exists():
        report = path / "report.json"
        return [(path / "features", report if report.is_file() else None)]
    out = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []:
        if (sub / "features").exists():
            report = sub / "report.json"
            out.append((sub / "features", report if report.is_file() else None))
    return out


def _source_bag(report: Path | None) -> Path | None:
    if report is None:
        return None
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    sections = data.get("bags") if isinstance(data.get("bags"), list) else [data]
    for section in sections:
        if isinstance(section, dict) and isinstance(section.get("bag"), str):
            return Path(section["bag"])
    return None


class SceneTokenDataset(Dataset[dict[str, Any]]):  # Any: tensors and the camera-name tuple
    """SceneTokens steps of replay outputs with optional ego-pose targets.

    Args:
        paths: Replay output folder(s) or features bag(s).
        topic: The SceneTokens topic (default: the one SceneTokens topic of each bag).
        pose_topic: Ego-pose topic (``nav_msgs/Odometry`` or ``geometry_msgs/PoseStamped``),
            or None for no pose targets.
        pose_bag: Where the poses are when neither the features bag nor the input bag of
            its ``report.json`` has the topic (one bag for all paths).
        horizon_s: Time covered by the future poses.
        horizon_steps: Number of future poses K.
        dtype: Convert features to this dtype (default: as stored).

    Raises:
        DatasetError: No SceneTokens anywhere, a pose topic that is nowhere to be found
            or of another type, bad horizon.
    """

    def __init__(
        self,
        paths: Path | str | Sequence[Path | str],
        topic: str | None = None,
        pose_topic: str | None = None,
        pose_bag: Path | str | None = None,
        horizon_s: float = 3.0,
        horizon_steps: int = 6,
        dtype: torch.dtype | None = None,
    ) -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if horizon_steps < 0 or not horizon_s > 0:
            raise DatasetError(
                f"horizon_s must be > 0 and horizon_steps >= 0, got {horizon_s} and {horizon_steps}"
            )
        self.horizon_s = float(horizon_s)
        self.horizon_steps = int(horizon_steps)
        self.pose_topic = pose_topic
        self.dtype = dtype
        self._segments: list[_Segment] = []
        for p in paths:
            found = _features_bags(Path(p))
            if not found:
                raise DatasetError(f"{p} is neither a replay output nor a bag")
            for bag, report in found:
                self._segments.append(self._index(bag, report, topic, pose_bag))
        if not any(len(s.stamps) for s in self._segments):
            raise DatasetError(
                f"no SceneTokens messages in {', '.join(str(s.bag) for s in self._segments)} "
                "(replay with -p scene_tokens.enabled:=true)"
            )
        self._offsets = np.cumsum([0] + [len(s.stamps) for s in self._segments])
        self._readers: dict[tuple[int, int], Reader] = {}

    def _index(
        self, bag: Path, report: Path | None, topic: str | None, pose_bag: Path | str | None
    ) -> _Segment:
        reader = bags.BagReader(bag)
        try:
            scene_topic = _scene_topic(reader, topic, bag)
            log_times: list[int] = []
            stamps: list[int] = []
            if scene_topic is not None:
                for _t, _ty, ts, data in reader.raw_messages([scene_topic]):
                    log_times.append(ts)
                    stamps.append(cdr_header_ns(data, "SceneTokens"))
        finally:
            reader.close()
        poses = None
        if self.pose_topic is not None:
            candidates = [bag, _source_bag(report), Path(pose_bag) if pose_bag else None]
            for cand in candidates:
                if cand is not None and cand.exists():
                    poses = read_pose_track(cand, self.pose_topic)
                    if poses is not None:
                        break
            if poses is None:
                looked = ", ".join(str(c) for c in candidates if c is not None)
                raise DatasetError(f"pose topic {self.pose_topic} not found (looked in {looked})")
        return _Segment(
            bag,
            scene_topic or "",
            np.asarray(log_times, dtype=np.int64),
            np.asarray(stamps, dtype=np.int64),
            poses,
        )

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def stamps_ns(self) -> np.ndarray:
        """``[len]`` int64 step stamps, in dataset order."""
        return np.concatenate([s.stamps for s in self._segments])

    def segment_poses(self) -> list[tuple[np.ndarray, PoseTrack | None]]:
        """Per features bag, in dataset order: its step stamps and its pose track."""
        return [(s.stamps, s.poses) for s in self._segments]

    def _reader(self, seg: int) -> Reader:
        key = (os.getpid(), seg)  # one reader per DataLoader worker process
        reader = self._readers.get(key)
        if reader is None:
            reader = Reader(self._segments[seg].bag)
            reader.open()
            self._readers[key] = reader
        return reader

    def _message(self, seg: int, i: int) -> object:
        s = self._segments[seg]
        reader = self._reader(seg)
        conns = [c for c in reader.connections if c.topic == s.topic]
        t = int(s.log_times[i])
        store = bags.typestore()
        for _conn, _ts, data in reader.messages(connections=conns, start=t, stop=t + 1):
            if cdr_header_ns(data, "SceneTokens") == s.stamps[i]:
                return store.deserialize_cdr(data, bags.SCENE_TOKENS_TYPE)
        raise DatasetError(f"{s.bag}: SceneTokens at log time {t} could not be read back")

    def __getitem__(self, index: int) -> dict[str, Any]:  # Any: as the class
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} steps")
        seg = int(np.searchsorted(self._offsets, index, side="right")) - 1
        i = index - int(self._offsets[seg])
        sample = scene_tokens_to_torch(self._message(seg, i), "cpu", self.dtype)
        poses = self._segments[seg].poses
        if poses is not None:
            sample.update(self._targets(poses, int(self._segments[seg].stamps[i])))
        return sample

    def _targets(self, poses: PoseTrack, stamp_ns: int) -> dict[str, torch.Tensor]:
        k = self.horizon_steps
        nan7 = np.full(7, np.nan)
        now = poses.at(stamp_ns)
        future = np.full((k, 7), np.nan)
        future_valid = np.zeros(k, dtype=bool)
        traj = np.full((k, 3), np.nan)
        for j in range(k):
            t = stamp_ns + round((j + 1) * self.horizon_s / k * 1e9)
            p = poses.at(t)
            if p is None:
                continue
            future[j], future_valid[j] = p, True
            if now is not None:
                r = quaternion_to_matrix(now[3:])
                rel = r.T @ (p[:3] - now[:3])
                dyaw = quaternion_yaw(p[3:]) - quaternion_yaw(now[3:])
                traj[j] = (rel[0], rel[1], math.atan2(math.sin(dyaw), math.cos(dyaw)))
        return {
            "ego_pose": torch.from_numpy(now if now is not None else nan7),
            "ego_valid": torch.tensor(now is not None),
            "future_poses": torch.from_numpy(future),
            "future_valid": torch.from_numpy(future_valid & (now is not None)),
            "future_trajectory": torch.from_numpy(traj.astype(np.float32)),
        }

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_readers"] = {}  # readers are per process
        return state

    def close(self) -> None:
        """Close the bag readers of this process."""
        for reader in self._readers.values():
            reader.close()
        self._readers = {}
