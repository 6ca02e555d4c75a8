"""Token sources of a recorded drive, side by side: the node's, per-frame, raw pixels.

For the planner-head comparison (``rvm-ros e2e-table``) every step of a bag is turned into
three kinds of tokens from the *same* preprocessed frames (the node's resize to the model
size, :func:`rvm_ros.imaging.preprocess.preprocess`):

* ``node``: the recurrent core's output, one step per frame per camera from the zero
  state: what the node publishes on ``~/scene_tokens`` (the same computation);
* ``frame``: the encoder's output for that frame alone (no recurrence);
* ``pixels``: raw RGB patches of the frame (16x16x3 values per cell, in [-0.5, 0.5]).

Token grids are average-pooled ``pool`` x ``pool`` (pixels: the frame is resized so a
cell of the pooled grid is one 16x16 patch), so every source has the same cells. Frames
are grouped into steps by header stamp; steps where a camera is missing are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.datasets.scene_tokens import DatasetError, PoseTrack, read_pose_track
from rvm_ros.imaging.cdr import cdr_header_ns
from rvm_ros.imaging.image_msg import image_to_array
from rvm_ros.imaging.preprocess import fit_geometry, preprocess
from rvm_ros.model.rvm import RVM
from rvm_ros.stamps import header_ns

__all__ = ["TOKEN_SOURCES", "DriveTokens", "extract_drive_tokens"]

#: Token sources computed from a bag (the windowed source is built from ``frame``).
TOKEN_SOURCES: tuple[str, ...] = ("node", "frame", "pixels")


@dataclass(frozen=True, eq=False)
class DriveTokens:
    """The token sources of one drive.

    Attributes:
        bag: The bag.
        cameras: Camera names (image topic ``/<cam>/image_raw`` or as found).
        stamps_ns: ``[T]`` int64 step stamps.
        tokens: Source -> ``[T, Ncam, N, C]`` float16.
        poses: The ego poses of the bag's pose topic.
        size: ``(height, width)`` of the network input.
    """

    bag: Path
    cameras: tuple[str, ...]
    stamps_ns: np.ndarray
    tokens: dict[str, np.ndarray]
    poses: PoseTrack
    size: tuple[int, int]


def _pool(tokens: torch.Tensor, h: int, w: int, pool: int) -> torch.Tensor:
    """``[B, h*w, C]`` -> ``[B, (h/p)*(w/p), C]`` (average)."""
    if pool == 1:
        return tokens
    b, _, c = tokens.shape
    grid = tokens.transpose(1, 2).reshape(b, c, h, w)
    pooled = torch.nn.functional.avg_pool2d(grid, pool, ceil_mode=True)
    return pooled.reshape(b, c, -1).transpose(1, 2)


def _patches(frame: np.ndarray, h: int, w: int, pool: int) -> np.ndarray:
    """``[cells, 768]`` raw patches: the frame resized to one 16x16 patch per pooled cell."""
    ch, cw = -(-h // pool), -(-w // pool)
    small = cv2.resize(frame, (cw * 16, ch * 16), interpolation=cv2.INTER_AREA)
    p = small.reshape(ch, 16, cw, 16, 3).transpose(0, 2, 1, 3, 4).reshape(ch * cw, 768)
    return np.asarray((p.astype(np.float32) / 255.0 - 0.5).astype(np.float16))


def _steps(
    bag: Path, cameras: Sequence[str] | None
) -> tuple[list[str], dict[str, str], list[tuple[int, dict[str, int]]]]:
    """Image topics per camera and the steps (stamp, camera -> message index)."""
    reader = bags.BagReader(bag)
    try:
        topics = {t: ty for t, ty in reader.topics.items() if ty == bags.IMAGE_TYPE}
        by_cam = {t.strip("/").split("/")[0]: t for t in sorted(topics)}
        names = list(cameras) if cameras else sorted(by_cam)
        missing = [c for c in names if c not in by_cam]
        if missing or not names:
            raise DatasetError(f"{bag}: no image topic for camera(s) {missing or names}")
        stamps: dict[int, dict[str, int]] = {}
        for i, (topic, _ty, _ts, data) in enumerate(
            reader.raw_messages([by_cam[c] for c in names])
        ):
            cam = topic.strip("/").split("/")[0]
            stamps.setdefault(cdr_header_ns(data, "Image"), {})[cam] = i
    finally:
        reader.close()
    steps = [(s, m) for s, m in sorted(stamps.items()) if len(m) == len(names)]
    return names, {c: by_cam[c] for c in names}, steps


@torch.no_grad()
def extract_drive_tokens(
    bag: Path | str,
    model: RVM,
    size: tuple[int, int] = (128, 128),
    pose_topic: str = "/odom",
    cameras: Sequence[str] | None = None,
    pool: int = 2,
    progress: Callable[[int], object] | None = None,
    max_steps: int | None = None,
) -> DriveTokens:
    """Run ``model`` over every step of ``bag`` (or its first ``max_steps``) and keep the
    three token sources.

    Raises:
        DatasetError: No image topics, no pose topic, or a size the model cannot take.
    """
    bag = Path(bag)
    poses = read_pose_track(bag, pose_topic)
    if poses is None:
        raise DatasetError(f"{bag}: no pose topic {pose_topic}")
    names, topics, steps = _steps(bag, cameras)
    if max_steps is not None:
        steps = steps[:max_steps]
    mh, mw = size
    try:
        gh, gw = model.config.grid(mh, mw)
    except ValueError as exc:
        raise DatasetError(f"model size {mh}x{mw}: {exc}") from exc
    state = model.init_state(len(names), mh, mw)
    out: dict[str, list[np.ndarray]] = {s: [] for s in TOKEN_SOURCES}
    wanted = {topics[c]: c for c in names}
    index = {(s, c): k for k, (s, m) in enumerate(steps) for c in m}
    current: dict[int, dict[str, np.ndarray]] = {}
    geometry = None
    reader = bags.BagReader(bag)
    try:
        for m in reader.messages(list(wanted)):
            if m.msg is None:
                continue
            stamp = header_ns(m.msg.header)
            cam = wanted[m.topic]
            if (stamp, cam) not in index:
                continue
            rgb = image_to_array(m.msg)
            if geometry is None or (geometry.image_height, geometry.image_width) != rgb.shape[:2]:
                geometry = fit_geometry(rgb.shape[0], rgb.shape[1], mh, mw, "stretch")
            current.setdefault(stamp, {})[cam] = preprocess(rgb, geometry)
            if len(current[stamp]) < len(names):
                continue
            got = current.pop(stamp)
            frames = np.stack([got[c] for c in names])  # [Ncam, H, W, 3]
            x = torch.from_numpy(frames).float() / 255.0
            encoded = model.encoder(x)  # [Ncam, 1+h*w, C]
            state = model.core(encoded, state)  # [Ncam, 1+h*w, C]
            # What the node publishes: the state minus the model's feature centre, if any.
            published = model.features(state, frames.shape[1], frames.shape[2])
            out["node"].append(_pool(published[:, 1:], gh, gw, pool).half().numpy())
            out["frame"].append(_pool(encoded[:, 1:], gh, gw, pool).half().numpy())
            out["pixels"].append(np.stack([_patches(f, gh, gw, pool) for f in frames]))
            if progress is not None:
                progress(1)
    finally:
        reader.close()
    stamps = np.asarray([s for s, _ in steps], np.int64)[: len(out["node"])]
    tokens = {k: np.stack(v) if v else np.zeros((0,)) for k, v in out.items()}
    return DriveTokens(bag, tuple(names), stamps, tokens, poses, (mh, mw))
