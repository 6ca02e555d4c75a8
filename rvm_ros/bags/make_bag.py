"""Build a rosbag2 of camera images from video files (``rvm-ros make-bag``).

One camera per video: the camera is named after the video file (``bikes.mp4`` → ``bikes``)
and publishes ``<prefix>/<camera>/image_raw`` (``sensor_msgs/Image``, ``rgb8``) or
``<prefix>/<camera>/image_raw/compressed`` (``sensor_msgs/CompressedImage``, JPEG), stamped
at the video's frame times from a fixed start time, so the same videos always give the
same bag.
"""

from __future__ import annotations

import heapq
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import cv2
import numpy as np
from rosbags.typesys.store import Typestore

from rvm_ros import fsutil, imaging
from rvm_ros.bags import rosbag2 as bags
from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import plan_output
from rvm_ros.stamps import NS_PER_SEC

if TYPE_CHECKING:
    from tqdm import tqdm
from rvm_ros.imaging.video import FrameError, iter_video, video_properties

# Stamp of the first frame of every video: 2023-11-14T22:13:20Z (fixed for determinism).
DEFAULT_START_NS = 1_700_000_000 * NS_PER_SEC
# Largest image side make-bag writes (``--width``, and the height it implies).
MAX_SIDE = 8192
# Share of the available memory / free disk a bag may take before it is refused.
_MEMORY_SHARE = 0.5
_DISK_SHARE = 0.9
_TOPIC_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MakeBagError(RvmRosError):
    """A video could not be read or the bag could not be written (message says which)."""

    cause = "make_bag_failed"


class MakeBagUsageError(MakeBagError):
    """Bad arguments to make-bag (topic prefix, sizes): a usage error."""

    cause = "invalid_argument"
    exit_code = 2


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


def read_timed_frames(
    video: Path | str,
    max_frames: int | None = None,
    width: int | None = None,
    strict: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode a video with OpenCV, yielding ``(time_ns since start, rgb uint8 [H, W, 3])``.

    Frame times are ``index / fps`` (strictly increasing). After the last frame the count
    is checked against the container's (:func:`rvm_ros.imaging.video.check_frame_count`):
    a damaged video gives a warning, or an error with ``strict``.

    Raises:
        MakeBagError: the file cannot be opened, holds no frame, or (``strict``) is damaged.
    """
    path = Path(video)
    try:
        fps = video_properties(path)[0] or 30.0
        last = -1
        for index, rgb in enumerate(iter_video(path, max_frames, strict)):
            t_ns = round(index * 1e9 / fps)
            if t_ns <= last:
                t_ns = last + 1
            last = t_ns
            yield t_ns, _resize(rgb, width)
    except FrameError as exc:
        raise MakeBagError(f"video {exc}", cause=exc.cause) from exc


def validate_topic_prefix(prefix: str) -> str:
    """The normalised topic prefix (``"cameras"`` → ``"/cameras"``, ``"/"`` → ``""``).

    Raises:
        MakeBagUsageError: a token is not a valid ROS name (letters, digits, ``_``; not
            starting with a digit).
    """
    tokens = [t for t in prefix.strip("/").split("/")] if prefix.strip("/") else []
    for token in tokens:
        if not _TOPIC_TOKEN.match(token):
            raise MakeBagUsageError(
                f"--topic-prefix {prefix!r} is not a valid ROS topic prefix: {token!r} must "
                "hold only letters, digits and _ and not start with a digit"
            )
    return "/" + "/".join(tokens) if tokens else ""


def _check_sizes(
    props: list[tuple[float, int, int, int]],
    videos: Sequence[Path | str],
    width: int | None,
    max_frames: int | None,
    compressed: bool,
    out_parent: Path,
) -> None:
    """Refuse sizes that cannot be written before anything is decoded or allocated."""
    if width is not None and not 16 <= width <= MAX_SIDE:
        raise MakeBagUsageError(f"--width must be between 16 and {MAX_SIDE}, got {width}")
    memory = 64 << 20  # interpreter, codecs, the writer's chunk buffer
    disk = 0
    for (_fps, count, w0, h0), video in zip(props, videos, strict=True):
        if w0 <= 0 or h0 <= 0:
            continue
        w = width or w0
        h = max(1, round(h0 * w / w0))
        if h > MAX_SIDE or w > MAX_SIDE:
            raise MakeBagUsageError(
                f"{video}: frames of {w}x{h} exceed {MAX_SIDE} pixels on a side; "
                "choose a smaller --width"
            )
        frame = w * h * 3
        # decoded source frame + its RGB copy, the resized frame, message data + CDR bytes
        memory += 2 * w0 * h0 * 3 + 3 * frame
        frames = min(count, max_frames) if max_frames else count
        disk += 0 if compressed else frames * frame
    avail = fsutil.available_memory()
    if avail is not None and memory > _MEMORY_SHARE * avail:
        raise MakeBagUsageError(
            f"make-bag would need about {memory / 2**30:.1f} GiB of memory at once, more "
            f"than half of the {avail / 2**30:.1f} GiB available; choose a smaller --width"
        )
    probe = out_parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if disk > _DISK_SHARE * free:
        raise MakeBagUsageError(
            f"the bag would take about {disk / 2**30:.1f} GiB, more than the "
            f"{free / 2**30:.1f} GiB free in {probe}; choose a smaller --width, --max-frames "
            "or --compressed"
        )


def _stamp(store: Typestore, t_ns: int, frame_id: str) -> bags.RosMessage:
    header_cls = store.types["std_msgs/msg/Header"]
    time_cls = store.types["builtin_interfaces/msg/Time"]
    return header_cls(stamp=time_cls(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id=frame_id)


def image_message(
    store: Typestore, rgb: np.ndarray, t_ns: int, frame_id: str, compressed: bool = False
) -> tuple[str, bags.RosMessage]:
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
    strict: bool = False,
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
        force: replace ``out`` if it exists (only once the new bag is complete).
        progress: show a progress bar (stderr).
        strict: a video with fewer frames than its container lists is an error (else a
            logged warning).

    Returns:
        The bag path and what was written per camera.

    Raises:
        MakeBagError: bad arguments (:class:`MakeBagUsageError`), an unreadable video.
        OutputError: ``out`` exists without force, or is / contains / lies inside a video.
    """
    prefix = _check_arguments(videos, storage, max_frames, topic_prefix)
    # Inputs are checked and sized before the output is touched; a previous output is
    # replaced only once the new bag is complete (rvm_ros.fsutil).
    plan = plan_output(out, videos, force, what="output", keep_name=True)
    out = plan.final
    try:
        props = [video_properties(v) for v in videos]
        _check_sizes(props, videos, width, max_frames, compressed, out.parent)
    except FrameError as exc:
        plan.discard()
        raise MakeBagError(f"video {exc}", cause=exc.cause) from exc
    except MakeBagError:
        plan.discard()
        raise
    summaries, total = _cameras(videos, props, prefix, compressed, max_frames)
    streams = [
        _tagged(read_timed_frames(video, max_frames, width, strict), i)
        for i, video in enumerate(videos)
    ]
    store = bags.typestore()
    try:
        writer = bags.BagWriter(plan.work, storage, store)
    except BaseException:
        plan.discard()
        raise
    bar = _progress_bar(progress, total, out.name)
    try:
        _write_frames(writer, store, streams, summaries, start_ns, compressed, bar)
        writer.close()
        plan.commit()
    except BaseException:
        try:
            writer.close()
        finally:
            plan.discard()
        raise
    finally:
        if bar is not None:
            bar.close()
    return MakeBagResult(out, storage, summaries)


def _check_arguments(
    videos: Sequence[Path | str], storage: str, max_frames: int | None, topic_prefix: str
) -> str:
    """The normalised topic prefix, once the arguments that need no file are valid."""
    if not videos:
        raise MakeBagUsageError("no video given")
    if storage not in bags.STORAGES:
        raise MakeBagUsageError(f"unknown storage {storage!r}; expected one of {bags.STORAGES}")
    if max_frames is not None and max_frames < 1:
        raise MakeBagUsageError(f"--max-frames must be >= 1, got {max_frames}")
    return validate_topic_prefix(topic_prefix)


def _cameras(
    videos: Sequence[Path | str],
    props: list[tuple[float, int, int, int]],
    prefix: str,
    compressed: bool,
    max_frames: int | None,
) -> tuple[list[CameraSummary], int]:
    """One summary per video (unique camera name, topic, fps) and the frames expected."""
    summaries: list[CameraSummary] = []
    total = 0
    for i, video in enumerate(videos):
        name = camera_name(video)
        if any(s.camera == name for s in summaries):
            name = f"{name}_{i}"
        topic = f"{prefix}/{name}/image_raw" + ("/compressed" if compressed else "")
        fps, count = props[i][0], props[i][1]
        total += min(count, max_frames) if max_frames else count
        summaries.append(CameraSummary(name, topic, str(video), fps=fps))
    return summaries, total


def _progress_bar(progress: bool, total: int, name: str) -> tqdm[NoReturn] | None:
    """A frame progress bar on stderr, or None."""
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total or None, desc=f"make-bag {name}", unit="frame", leave=False)


def _write_frames(
    writer: bags.BagWriter,
    store: Typestore,
    streams: list[Iterator[tuple[int, int, np.ndarray]]],
    summaries: list[CameraSummary],
    start_ns: int,
    compressed: bool,
    bar: tqdm[NoReturn] | None,
) -> None:
    """Write the frames of all videos in stamp order (ties: video order)."""
    for t_ns, i, rgb in heapq.merge(*streams, key=lambda x: (x[0], x[1])):
        summary = summaries[i]
        stamp = start_ns + t_ns
        msgtype, msg = image_message(store, rgb, stamp, summary.camera, compressed)
        writer.write(summary.topic, msgtype, msg, stamp)
        summary.frames += 1
        summary.height, summary.width = int(rgb.shape[0]), int(rgb.shape[1])
        if bar is not None:
            bar.update(1)
