"""Replay rosbag2 camera images through the node's own processing core, offline.

``replay()`` reads the image topics of one or more bags with ``rosbags``, converts each
message with the node's converters (:mod:`rvm_ros.imaging`), batches frames with the
offline rule (:func:`rvm_ros.pipeline.group_batches`) and runs them through
:class:`rvm_ros.pipeline.Processor` (same preprocessing, state resets, pooling, tracking
as ``rvm_node``), as fast as the model allows and deterministically (fixed order, fixed
torch threads). Outputs, in ``DIR``:

* ``features/`` — a rosbag2 (``features.mcap``, or ``features.db3`` for sqlite3 input)
  with ``/<node>/<camera>/features`` (``rvm_ros/msg/FeatureMap``; node ``rvm`` by default) and
  ``/<node>/<camera>/tracks`` (``rvm_ros/msg/TrackedPoints``) for every processed frame;
* ``report.json``, ``report.md`` and plots (:mod:`rvm_ros.replay.report`).

Several bags give one sub-folder per bag plus a combined report. Work happens in
``DIR.partial/``, renamed to ``DIR`` at the end; an interrupted or failed run leaves
``DIR.partial/`` with a ``PARTIAL`` marker, a valid (closed) features bag and
``report.json`` with ``"complete": false``.

Ground truth: a topic ``<image topic>/gt_tracks`` of type ``rvm_ros/msg/TrackedPoints``
holds reference tracks (image pixels, header stamps equal to the image's). Each new
visible ground-truth point is handed to the tracker as a query on its first frame and
the TAP-Vid metrics of the predictions are reported.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import math
import multiprocessing
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rvm_ros import bags

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "random:tiny"
NODE_NAME = "rvm"
GT_SUFFIX = "/gt_tracks"
PARTIAL_MARKER = "PARTIAL"
# Image topic suffixes dropped when naming a camera after its topic.
_TOPIC_SUFFIXES = ("/compressed", "/image_raw", "/image_rect", "/image_color", "/image")


class ReplayError(Exception):
    """Replay cannot start or continue (bad arguments, unreadable bag, config mismatch)."""


@dataclass
class ReplaySettings:
    """How to replay (everything but the bags and the output folder).

    Attributes:
        config: ROS 2 parameters file of the node (``config/rvm.yaml``), or None.
        params: parameter overrides (dotted names, as in the file), applied last.
        checkpoint: checkpoint; default: the config's, else ``random:tiny``.
        backend: inference backend; default: the config's (``auto``).
        precision: ``fp32`` | ``fp16`` | ``bf16``; default: the config's.
        device: torch device; default: the config's.
        threads: torch CPU threads (fixed for determinism).
        visuals: write plots and videos (PCA colouring, tracks).
        progress: show a progress bar (stderr).
        node_name: node name whose section of the params file applies.
    """

    config: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    backend: str | None = None
    precision: str | None = None
    device: str | None = None
    threads: int = 1
    visuals: bool = True
    progress: bool = True
    node_name: str = NODE_NAME


@dataclass
class ReplayOutcome:
    """What :func:`replay` produced.

    Attributes:
        out_dir: the output folder (``DIR``, or ``DIR.partial`` when not complete).
        report: the report (as written to ``report.json``).
        complete: every readable frame was processed and everything written.
    """

    out_dir: Path
    report: dict[str, Any]
    complete: bool


# --------------------------------------------------------------------------- setup


def camera_name_from_topic(topic: str) -> str:
    """Camera name for a topic when no config maps it: ``/cameras/bikes/image_raw`` → bikes."""
    name = topic.rstrip("/")
    changed = True
    while changed:
        changed = False
        for suffix in _TOPIC_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                changed = True
    last = name.rsplit("/", 1)[-1] or "camera"
    return _sanitize(last)


def _sanitize(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "camera"
    return name if name[0].isalpha() else "cam_" + name


def topic_cameras(topics: Sequence[str]) -> dict[str, str]:
    """Topic → camera name for topics with no config, unique (full path on collisions)."""
    names = {t: camera_name_from_topic(t) for t in topics}
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    return {t: (n if counts[n] == 1 else _sanitize(t.replace("/", "_"))) for t, n in names.items()}


def build_config(
    image_topics: Mapping[str, str], settings: ReplaySettings
) -> tuple[Any, dict[str, str]]:
    """The node configuration and topic → camera map for a bag's image topics.

    With ``settings.config`` the node's parameters file decides cameras and topics (bag
    image topics no camera subscribes to are ignored and reported); without it, each
    image topic is one camera named after the topic.

    Returns:
        ``(NodeConfig, {topic: camera})``.

    Raises:
        ReplayError: invalid configuration, or no configured camera topic in the bag.
    """
    from rvm_ros.node.config import ConfigError, config_from_params, load_params_file

    params: dict[str, Any] = {}
    try:
        if settings.config is not None:
            params.update(load_params_file(settings.config, settings.node_name))
    except ConfigError as exc:
        raise ReplayError(f"config {settings.config}: {exc}") from exc
    if settings.config is None:
        mapping = topic_cameras(sorted(image_topics))
        params["cameras"] = [mapping[t] for t in sorted(image_topics)]
        for topic, cam in mapping.items():
            params[f"cameras.{cam}.topic"] = topic
            compressed = image_topics[topic] == bags.COMPRESSED_IMAGE_TYPE
            params[f"cameras.{cam}.transport"] = "compressed" if compressed else "raw"
    params.update(settings.params)
    for key, value in (
        ("checkpoint", settings.checkpoint),
        ("backend", settings.backend),
        ("precision", settings.precision),
        ("device", settings.device),
    ):
        if value is not None:
            params[key] = value
    params.setdefault("checkpoint", DEFAULT_CHECKPOINT)
    if not params["checkpoint"]:
        params["checkpoint"] = DEFAULT_CHECKPOINT
    where = f"config {settings.config}" if settings.config else "replay settings"
    try:
        cfg = config_from_params(params)
    except ConfigError as exc:
        raise ReplayError(f"{where}: {exc}") from exc
    resolved = {c: resolve_topic(t, settings.node_name) for c, t in cfg.camera_topics.items()}
    topic_to_camera = {t: c for c, t in resolved.items() if t in image_topics}
    if not topic_to_camera:
        raise ReplayError(
            f"none of the configured camera topics ({', '.join(resolved.values())}) "
            f"is an image topic of the bag (image topics: "
            f"{', '.join(image_topics) or 'none'}); map a camera to a bag topic with "
            f"-p cameras.<camera>.topic=<topic>"
        )
    return cfg, topic_to_camera


def resolve_topic(topic: str, node_name: str = NODE_NAME) -> str:
    """A configured topic as the node would resolve it in the root namespace.

    ``front/image_raw`` → ``/front/image_raw``; ``~/image`` → ``/<node_name>/image``.
    """
    if topic.startswith("~/"):
        return f"/{node_name}/{topic[2:]}"
    return topic if topic.startswith("/") else "/" + topic


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


# --------------------------------------------------------------------------- per camera


@dataclass
class _CameraLog:
    """Everything recorded about one camera during a replay."""

    camera: str
    topic: str
    msgtype: str
    frames: list[dict[str, Any]] = field(default_factory=list)  # the ledger
    step_ms: list[float] = field(default_factory=list)
    resets: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    processed: int = 0
    cos_sum: float = 0.0
    cos_pairs: int = 0
    prev_features: np.ndarray | None = None
    tracks: dict[int, list[int]] = field(default_factory=dict)  # id -> [first, last, seen, vis]
    image_size: tuple[int, int] | None = None
    model_id: str = ""
    grid: tuple[int, int, int] | None = None

    def skip(self, index: int, stamp_ns: int, reason: str, detail: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.frames[index].update(status="skipped", reason=reason, detail=detail)

    def result(self, index: int, res: Any) -> None:
        self.processed += 1
        entry = self.frames[index]
        entry.update(status="processed", seq=int(res.seq))
        if res.state_reset:
            entry["reset"] = res.reset_reason
            self.resets[res.reset_reason] = self.resets.get(res.reset_reason, 0) + 1
        self.model_id = res.model_id
        self.grid = (int(res.grid_height), int(res.grid_width), int(res.channels))
        feats = np.asarray(res.features, np.float32).reshape(-1, res.channels)
        prev = self.prev_features
        if prev is not None and not res.state_reset and prev.shape == feats.shape:
            num = np.sum(feats * prev, axis=1)
            den = np.linalg.norm(feats, axis=1) * np.linalg.norm(prev, axis=1)
            cos = num / np.maximum(den, 1e-12)
            self.cos_sum += float(np.mean(cos))
            self.cos_pairs += 1
        self.prev_features = feats
        if res.tracks is not None:
            seq = int(res.seq)
            for tid, vis in zip(res.tracks.ids.tolist(), res.tracks.visible.tolist(), strict=False):
                rec = self.tracks.get(int(tid))
                if rec is None:
                    rec = self.tracks[int(tid)] = [seq, seq, 0, 0]
                rec[1] = seq
                rec[2] += 1
                rec[3] += int(bool(vis))

    def summary(self, wall_s: float) -> dict[str, Any]:
        for entry in self.frames:  # read but never processed: the run stopped early
            if "status" not in entry:
                entry.update(status="skipped", reason="interrupted", detail="run stopped")
                self.skipped["interrupted"] = self.skipped.get("interrupted", 0) + 1
        steps = np.asarray(self.step_ms, np.float64)
        latency = (
            {
                "p50": float(np.percentile(steps, 50)),
                "p99": float(np.percentile(steps, 99)),
                "mean": float(steps.mean()),
                "steps": len(self.step_ms),
            }
            if len(steps)
            else {"p50": None, "p99": None, "mean": None, "steps": 0}
        )
        lifetimes = [r[1] - r[0] + 1 for r in self.tracks.values()]
        seen = sum(r[2] for r in self.tracks.values())
        visible = sum(r[3] for r in self.tracks.values())
        return {
            "camera": self.camera,
            "topic": self.topic,
            "msgtype": self.msgtype,
            "frames_in": len(self.frames),
            "processed": self.processed,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "resets": dict(sorted(self.resets.items())),
            "reset_total": sum(self.resets.values()),
            "step_latency_ms": latency,
            "throughput_fps": self.processed / wall_s if wall_s > 0 else None,
            "feature_stability": {
                "mean_cosine": self.cos_sum / self.cos_pairs if self.cos_pairs else None,
                "pairs": self.cos_pairs,
            },
            "tracks": {
                "count": len(self.tracks),
                "lifetime_frames": {
                    "mean": float(np.mean(lifetimes)) if lifetimes else None,
                    "min": int(min(lifetimes)) if lifetimes else None,
                    "max": int(max(lifetimes)) if lifetimes else None,
                },
                "visible_ratio": visible / seen if seen else None,
            },
            "image_size": list(self.image_size) if self.image_size else None,
            "feature_grid": list(self.grid) if self.grid else None,
            "model_id": self.model_id,
            "frames": self.frames,
        }


# --------------------------------------------------------------------------- ground truth


@dataclass
class _GroundTruth:
    """Reference tracks of one camera: stamp → (ids, xy, visible)."""

    frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    gt_to_pred: dict[int, int] = field(default_factory=dict)  # -1: could not be queried
    rejected: dict[int, str] = field(default_factory=dict)
    query_index: dict[int, int] = field(default_factory=dict)  # gt id -> frame index
    # frame index (processed order) -> {gt id: (pred xy, pred visible)}
    predictions: list[tuple[int, dict[int, tuple[float, float, bool]]]] = field(
        default_factory=list
    )


def _read_ground_truth(reader: bags.BagReader, topics: Mapping[str, str]) -> dict[str, Any]:
    """camera → _GroundTruth for each image topic with a ``<topic>/gt_tracks`` topic."""
    out: dict[str, _GroundTruth] = {}
    gt_topics = {
        t + GT_SUFFIX: cam
        for t, cam in topics.items()
        if reader.topics.get(t + GT_SUFFIX) == bags.TRACKED_POINTS_TYPE
    }
    if not gt_topics:
        return out
    for m in reader.messages(list(gt_topics)):
        if m.msg is None:
            continue
        gt = out.setdefault(gt_topics[m.topic], _GroundTruth())
        pts = m.msg.points
        ids = np.asarray([p.id for p in pts], np.int64)
        xy = np.asarray([[p.x, p.y] for p in pts], np.float64).reshape(-1, 2)
        vis = np.asarray([p.visible for p in pts], bool)
        gt.frames[_stamp_ns(m.msg.header)] = (ids, xy, vis)
    return out


def _tapvid(gt: _GroundTruth, image_size: tuple[int, int] | None) -> dict[str, Any]:
    from rvm_ros.tapvid import tapvid_metrics

    if not gt.predictions or not gt.query_index or image_size is None:
        return {"error": "no processed frame carried ground-truth points"}
    gt_ids = sorted(gt.query_index)
    row = {g: i for i, g in enumerate(gt_ids)}
    index_of = {stamp: i for i, (stamp, _) in enumerate(gt.predictions)}
    num_t = len(gt.predictions)
    gt_xy = np.zeros((len(gt_ids), num_t, 2))
    gt_vis = np.zeros((len(gt_ids), num_t), bool)
    pred_xy = np.zeros((len(gt_ids), num_t, 2))
    pred_vis = np.zeros((len(gt_ids), num_t), bool)
    for t, (stamp, preds) in enumerate(gt.predictions):
        ids, xy, vis = gt.frames[stamp]
        for gid, p, v in zip(ids.tolist(), xy, vis.tolist(), strict=False):
            if gid in row:
                gt_xy[row[gid], t] = p
                gt_vis[row[gid], t] = v
        for gid, (px, py, pv) in preds.items():
            pred_xy[row[gid], t] = (px, py)
            pred_vis[row[gid], t] = pv
    queries = np.asarray([index_of[gt.query_index[g]] for g in gt_ids], np.int64)
    try:
        metrics = tapvid_metrics(gt_xy, gt_vis, pred_xy, pred_vis, queries, image_size)
    except ValueError as exc:
        return {"error": str(exc)}
    return {
        "points": len(gt_ids),
        "frames": num_t,
        "metrics": {k: (None if math.isnan(v) else v) for k, v in metrics.items()},
    }


# --------------------------------------------------------------------------- one bag


def _features_storage(reader: bags.BagReader) -> str:
    return reader.storage if reader.storage in bags.STORAGES else "mcap"


_END = object()


class _Prefetch:
    """Reads and decodes image messages in a background thread, in bag order.

    Items (in order): ``("frame", FrameInput)`` or ``("skip", camera, index, stamp,
    bag_time, reason, detail)``; an exception in the thread is handed over and re-raised
    by :meth:`items`. Decoding overlaps with the model step (which releases the GIL).
    """

    def __init__(
        self,
        bag: Path,
        topic_to_camera: Mapping[str, str],
        max_pixels: int,
        depth: int = 8,
    ) -> None:
        self.bag = bag
        self.errors: list[str] = []
        self.topic_to_camera = dict(topic_to_camera)
        self.max_pixels = max_pixels
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.decode_s = 0.0  # reading + deserializing + converting (reading thread)
        self.wait_s = 0.0  # the processing loop waiting for the next frame
        self.thread = threading.Thread(target=self._run, name="replay-read", daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        from rvm_ros import imaging
        from rvm_ros.pipeline import FrameInput

        counts: dict[str, int] = {}
        try:
            # Opened here: sqlite3 connections may only be used by the thread that made them.
            with bags.BagReader(self.bag) as reader:
                self._read(reader, counts, imaging, FrameInput)
                self.errors = list(reader.errors)
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._put(("error", exc))
            return
        self._put(_END)

    def _read(
        self, reader: bags.BagReader, counts: dict[str, int], imaging: Any, frame_cls: Any
    ) -> None:
        t0 = time.perf_counter()  # busy time: reading, deserializing and converting
        for m in reader.messages(list(self.topic_to_camera)):
            camera = self.topic_to_camera[m.topic]
            index = counts.get(camera, 0)
            counts[camera] = index + 1
            item: tuple[Any, ...]
            if m.msg is None:
                item = (
                    "skip",
                    camera,
                    index,
                    None,
                    m.timestamp_ns,
                    "unreadable_message",
                    f"{m.topic} message {index}: {m.error}",
                )
            else:
                stamp = _stamp_ns(m.msg.header)
                try:
                    if m.msgtype == bags.COMPRESSED_IMAGE_TYPE:
                        image = imaging.compressed_to_array(m.msg, self.max_pixels)
                    else:
                        image = imaging.image_to_array(m.msg, self.max_pixels)
                except imaging.ImageError as exc:
                    item = (
                        "skip",
                        camera,
                        index,
                        stamp,
                        m.timestamp_ns,
                        exc.cause,
                        f"{m.topic} message {index}: {exc}",
                    )
                else:
                    header = (m.msg.header, index, m.timestamp_ns)
                    item = ("frame", frame_cls(camera, stamp, header, image))
            self.decode_s += time.perf_counter() - t0
            if not self._put(item):
                return
            t0 = time.perf_counter()

    def items(self) -> Iterator[tuple[Any, ...]]:
        """The decoded items, in bag order (raises what the reading thread raised)."""
        while True:
            t0 = time.perf_counter()
            item = self.queue.get()
            self.wait_s += time.perf_counter() - t0
            if item is _END:
                return
            if item[0] == "error":
                raise item[1]
            yield item

    def close(self) -> None:
        """Stop the thread (it ends at its next message) and wait for it."""
        self.stop.set()
        self.thread.join(timeout=10)


class _Sink:
    """Writes results (features bag, plots) in a background thread, in order."""

    def __init__(
        self,
        open_writer: Callable[[], bags.BagWriter],
        handle: Callable[[bags.BagWriter, Any, Any], None],
        depth: int = 16,
    ) -> None:
        self.open_writer = open_writer
        self.handle = handle
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="replay-write", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        writer: bags.BagWriter | None = None
        try:
            # Opened here: sqlite3 connections may only be used by the thread that made them.
            writer = self.open_writer()
        except BaseException as exc:
            self.error = exc
        try:
            while True:
                item = self.queue.get()
                if item is _END:
                    return
                if self.error is not None or writer is None:
                    continue  # drain after a failure
                try:
                    self.handle(writer, *item)
                except BaseException as exc:
                    self.error = exc
        finally:
            if writer is not None:
                try:
                    writer.close()
                except BaseException as exc:
                    self.error = self.error or exc

    def put(self, frame: Any, result: Any) -> None:
        """Queue one result for writing (raises an earlier write failure)."""
        if self.error is not None:
            raise self.error
        self.queue.put((frame, result))

    def close(self) -> None:
        """Write what is queued, stop the thread; raises a write failure."""
        self.queue.put(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error


def replay_bag(bag: Path | str, out_dir: Path | str, settings: ReplaySettings) -> dict[str, Any]:
    """Replay one bag into ``out_dir`` (which must exist); returns its report section.

    Torch runs on ``settings.threads`` CPU threads meanwhile (restored afterwards). On
    KeyboardInterrupt the outputs written so far are closed and valid, and the section
    says ``"interrupted": true`` (:func:`replay` then marks the output partial).

    Raises:
        ReplayError: the bag cannot be opened or its topics do not fit the config.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        return _replay_bag(bag, out_dir, settings)
    finally:
        torch.set_num_threads(threads)


def _replay_bag(bag: Path | str, out_dir: Path | str, settings: ReplaySettings) -> dict[str, Any]:
    import torch

    from rvm_ros.messages import feature_map_fields, fill_message, tracked_points_fields
    from rvm_ros.pipeline import FrameResult, FrameSkip, Processor, group_batches
    from rvm_ros.replay.report import Visuals
    from rvm_ros.runtime import create_encoder

    bag = Path(bag)
    out_dir = Path(out_dir)
    try:
        reader = bags.BagReader(bag)
    except bags.BagError as exc:
        raise ReplayError(str(exc)) from exc
    images = bags.image_topics(reader.topics)
    if not images:
        reader.close()
        raise ReplayError(
            f"bag {bag} has no sensor_msgs/Image or CompressedImage topic "
            f"(topics: {', '.join(f'{t} [{ty}]' for t, ty in reader.topics.items()) or 'none'})"
        )
    cfg, topic_to_camera = build_config(images, settings)
    proc_cfg = cfg.processing
    torch.set_num_threads(max(1, settings.threads))
    logs = {
        cam: _CameraLog(cam, topic, images[topic]) for topic, cam in sorted(topic_to_camera.items())
    }
    ground_truth = _read_ground_truth(reader, topic_to_camera)
    if ground_truth and not proc_cfg.tracking:
        log.warning("bag has ground-truth tracks but tracking is off in the config")
    report: dict[str, Any] = {
        "bag": str(bag),
        "storage": reader.storage,
        "complete": False,
        "read_errors": reader.errors,
        "ignored_image_topics": sorted(set(images) - set(topic_to_camera)),
        "missing_camera_topics": sorted(
            t
            for t in (resolve_topic(x, settings.node_name) for x in cfg.camera_topics.values())
            if t not in topic_to_camera
        ),
        "checkpoint": cfg.checkpoint,
        "backend": cfg.backend,
        "precision": cfg.precision,
        "threads": settings.threads,
        "processing": {
            k: v for k, v in asdict(proc_cfg).items() if k != "tracker" and v is not None
        },
    }
    try:
        encoder = create_encoder(
            cfg.checkpoint,
            cfg.backend,
            cfg.precision,
            cfg.device or None,
            height=proc_cfg.model_height,
            width=proc_cfg.model_width,
            max_batch=max(1, len(topic_to_camera)),
        )
    except Exception as exc:  # unreadable checkpoint, backend unavailable, bad size, ...
        reader.close()
        raise ReplayError(
            f"cannot create the {cfg.backend} encoder for {cfg.checkpoint}: {exc}"
        ) from exc
    report["encoder"] = encoder.info.as_dict()
    try:
        processor = Processor(proc_cfg, encoder)
        report["warmup_s"] = _warm_up(proc_cfg, encoder)
    except Exception as exc:
        encoder.close()
        reader.close()
        raise ReplayError(
            f"cannot run the {cfg.backend} encoder on {cfg.checkpoint}: {exc}"
        ) from exc
    storage = _features_storage(reader)
    report["features_bag"] = "features"
    store = bags.typestore()
    fmap_cls = store.types[bags.FEATURE_MAP_TYPE]
    tracks_cls = store.types[bags.TRACKED_POINTS_TYPE]
    visuals = Visuals(out_dir, enabled=settings.visuals)
    timing = {"decode_s": 0.0, "process_s": 0.0, "write_s": 0.0, "visuals_s": 0.0, "step_s": 0.0}
    total = sum(
        c.msgcount
        for c in (reader._reader.connections if reader._reader else [])
        if c.topic in topic_to_camera
    )
    bar = _progress(total or None, f"replay {bag.name}", settings.progress)

    def write_result(writer: bags.BagWriter, frame: Any, out: Any) -> None:
        header, _index, bag_time = frame.header
        t1 = time.perf_counter()
        node = settings.node_name
        msg = fill_message(fmap_cls, feature_map_fields(out), header)
        writer.write(f"/{node}/{out.camera}/features", bags.FEATURE_MAP_TYPE, msg, bag_time)
        if out.tracks is not None:
            tmsg = fill_message(tracks_cls, tracked_points_fields(out), header)
            writer.write(f"/{node}/{out.camera}/tracks", bags.TRACKED_POINTS_TYPE, tmsg, bag_time)
        t2 = time.perf_counter()
        timing["write_s"] += t2 - t1
        visuals.add(frame, out)
        timing["visuals_s"] += time.perf_counter() - t2

    start = time.perf_counter()
    steps = 0
    reader.close()  # the reading thread opens its own
    prefetch = _Prefetch(bag, topic_to_camera, proc_cfg.max_image_pixels)
    sink = _Sink(lambda: bags.BagWriter(out_dir / "features", storage, store), write_result)

    def frames() -> Iterator[Any]:
        for item in prefetch.items():
            if item[0] == "frame":
                frame = item[1]
                _header, index, bag_time = frame.header
                log_ = logs[frame.camera]
                assert index == len(log_.frames)
                log_.frames.append(
                    {"index": index, "bag_time_ns": bag_time, "stamp_ns": frame.stamp_ns}
                )
                log_.image_size = (int(frame.image.shape[0]), int(frame.image.shape[1]))
                yield frame
            else:
                _kind, camera, index, stamp, bag_time, reason, detail = item
                log_ = logs[camera]
                assert index == len(log_.frames)
                log_.frames.append({"index": index, "bag_time_ns": bag_time, "stamp_ns": stamp})
                log_.skip(index, stamp, reason, detail)
                bar.update(1)

    try:
        batches = group_batches(frames(), proc_cfg.max_batch_wait_ms, len(topic_to_camera))
        for batch in batches:
            for frame in batch:
                gt = ground_truth.get(frame.camera)
                if gt is not None and proc_cfg.tracking:
                    _add_gt_queries(processor, gt, frame)
            t0 = time.perf_counter()
            outputs = processor.process(batch)
            timing["process_s"] += time.perf_counter() - t0
            step_seen = False
            for frame, out in zip(batch, outputs, strict=True):
                _header, index, _bag_time = frame.header
                log_ = logs[frame.camera]
                if isinstance(out, FrameSkip):
                    log_.skip(index, frame.stamp_ns, out.reason, out.detail)
                    continue
                assert isinstance(out, FrameResult)
                if not step_seen:
                    timing["step_s"] += out.step_ms / 1000.0
                    steps += 1
                    step_seen = True
                log_.step_ms.append(float(out.step_ms))
                log_.result(index, out)
                gt = ground_truth.get(frame.camera)
                if gt is not None:
                    _record_gt_predictions(gt, frame, out)
                sink.put(frame, out)
            bar.update(len(batch))
        report["complete"] = True
    except KeyboardInterrupt:
        # Stop cleanly: the outputs below are closed and the caller marks them partial.
        report["interrupted"] = True
    finally:
        prefetch.close()
        try:
            sink.close()  # everything computed so far goes into the features bag
        finally:
            wall = time.perf_counter() - start
            bar.close()
            encoder.close()
        timing["decode_s"] = prefetch.decode_s
        timing["wait_read_s"] = prefetch.wait_s
        report["wall_s"] = wall
        report["timing_s"] = timing
        report["steps"] = steps
        processed = sum(lg.processed for lg in logs.values())
        report["throughput_fps"] = processed / wall if wall > 0 else None
        report["model_step_fps"] = processed / timing["step_s"] if timing["step_s"] > 0 else None
        report["overhead_fraction"] = 1.0 - timing["step_s"] / wall if wall > 0 else None
        report["cameras"] = {cam: lg.summary(wall) for cam, lg in logs.items()}
        for cam, gt in ground_truth.items():
            report["cameras"][cam]["tapvid"] = (
                _tapvid(gt, logs[cam].image_size)
                if proc_cfg.tracking
                else {"error": "tracking is off in the config; no predictions to score"}
            )
        report["read_errors"] = _unique(reader.errors + prefetch.errors)
        try:
            report["plots"] = visuals.finish(report)
        except Exception as exc:  # plots must never hide the replay's result
            report["plots"] = {"error": f"{type(exc).__name__}: {exc}"}
    return report


def _warm_up(proc_cfg: Any, encoder: Any) -> float:
    """One frame through a throw-away Processor on the same encoder (first calls allocate,
    import and compile), on a camera name no bag uses; its encoder state is then dropped.
    The replay's own Processor and cameras are untouched, so outputs do not change.
    """
    from rvm_ros import imaging  # noqa: F401 - imported here, not in the timed loop
    from rvm_ros.pipeline import FrameInput, Processor

    t0 = time.perf_counter()
    name = "replay_warmup"
    while name in proc_cfg.cameras:
        name += "_"
    warm = Processor(dataclasses.replace(proc_cfg, cameras=(name,)), encoder)
    image = np.zeros((proc_cfg.model_height, proc_cfg.model_width, 3), np.uint8)
    warm.process([FrameInput(name, 0, None, image)])
    encoder.reset(name)
    return time.perf_counter() - t0


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _add_gt_queries(processor: Any, gt: _GroundTruth, frame: Any) -> None:
    entry = gt.frames.get(frame.stamp_ns)
    if entry is None:
        return
    ids, xy, vis = entry
    new = [
        i
        for i, (gid, v) in enumerate(zip(ids.tolist(), vis.tolist(), strict=False))
        if v and gid not in gt.gt_to_pred
    ]
    if not new:
        return
    for i in new:
        gid = int(ids[i])
        try:
            (pid,) = processor.set_query_points(
                frame.camera, [float(xy[i, 0])], [float(xy[i, 1])], True
            )
        except ValueError as exc:  # e.g. outside the part of the image the network sees
            gt.rejected[gid] = str(exc)
            gt.gt_to_pred[gid] = -1
            continue
        gt.gt_to_pred[gid] = int(pid)
        gt.query_index[gid] = frame.stamp_ns


def _record_gt_predictions(gt: _GroundTruth, frame: Any, out: Any) -> None:
    if frame.stamp_ns not in gt.frames or out.tracks is None:
        return
    by_pred = {
        int(i): (float(x), float(y), bool(v))
        for i, x, y, v in zip(
            out.tracks.ids.tolist(),
            out.tracks.x.tolist(),
            out.tracks.y.tolist(),
            out.tracks.visible.tolist(),
            strict=False,
        )
    }
    preds = {g: by_pred[p] for g, p in gt.gt_to_pred.items() if p in by_pred}
    gt.predictions.append((frame.stamp_ns, preds))


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int | None, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)


# --------------------------------------------------------------------------- many bags


def _bag_label(bag: Path, taken: set[str]) -> str:
    name = _sanitize(bag.name or "bag")
    label, i = name, 1
    while label in taken:
        i += 1
        label = f"{name}_{i}"
    taken.add(label)
    return label


def _replay_worker(bag: str, out_dir: str, settings: ReplaySettings) -> dict[str, Any]:
    try:
        return replay_bag(bag, out_dir, settings)
    except KeyboardInterrupt:
        return {"bag": bag, "complete": False, "error": "interrupted", "interrupted": True}


def replay(
    bag_paths: Sequence[Path | str],
    out: Path | str,
    settings: ReplaySettings | None = None,
    force: bool = False,
    workers: int = 1,
) -> ReplayOutcome:
    """Replay bags into ``out`` (see the module docstring for what is written).

    Args:
        bag_paths: rosbag2 folders (or bare ``.mcap`` / ``.db3`` files).
        out: output folder; must not exist unless ``force``.
        settings: what to run; defaults to :class:`ReplaySettings`.
        force: replace an existing ``out``.
        workers: bags replayed in parallel processes (each with ``settings.threads``).

    Returns:
        The outcome; ``complete`` False when a bag failed or could only partly be read.

    Raises:
        ReplayError: bad arguments or ``out`` exists without ``force``.
        KeyboardInterrupt: after the partial output has been closed and marked.
    """
    from rvm_ros.replay.report import write_reports

    settings = settings or ReplaySettings()
    paths = [Path(b) for b in bag_paths]
    if not paths:
        raise ReplayError("no bag given")
    for p in paths:
        if not p.exists():
            raise ReplayError(f"bag {p} does not exist")
    if workers < 1:
        raise ReplayError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if out.exists() and not force:
        raise ReplayError(f"output {out} exists; pass --force to replace it")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    (partial / PARTIAL_MARKER).write_text(
        "replay in progress or interrupted: this output is incomplete\n"
    )
    single = len(paths) == 1
    taken: set[str] = set()
    dirs = [partial if single else partial / _bag_label(p, taken) for p in paths]
    for d in dirs:
        d.mkdir(exist_ok=True)
    sections: list[dict[str, Any] | None] = [None] * len(paths)
    interrupted = False
    start = time.perf_counter()
    try:
        if workers == 1 or single:
            for i, (p, d) in enumerate(zip(paths, dirs, strict=False)):
                try:
                    section = _run_one(p, d, settings, raise_errors=single)
                except ReplayError:
                    shutil.rmtree(partial, ignore_errors=True)  # nothing was written yet
                    raise
                sections[i] = section
                if section.get("interrupted"):
                    interrupted = True
                    break
        else:
            # spawn: forking a process that already ran torch (OpenMP) or DDS threads can hang
            ctx = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                futures = {
                    pool.submit(_replay_worker, str(p), str(d), settings): i
                    for i, (p, d) in enumerate(zip(paths, dirs, strict=False))
                }
                try:
                    for fut in concurrent.futures.as_completed(futures):
                        i = futures[fut]
                        try:
                            result = fut.result()
                            sections[i] = result
                            interrupted = interrupted or bool(result.get("interrupted"))
                        except Exception as exc:  # ReplayError, or a failure in the worker
                            sections[i] = {
                                "bag": str(paths[i]),
                                "complete": False,
                                "error": str(exc),
                            }
                except KeyboardInterrupt:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    except KeyboardInterrupt:
        interrupted = True
    wall = time.perf_counter() - start
    done = [
        s if s is not None else {"bag": str(p), "complete": False, "error": "not run"}
        for s, p in zip(sections, paths, strict=False)
    ]
    complete = not interrupted and all(s.get("complete") for s in done)
    report = _combine(done, complete, wall, single, settings)
    if interrupted:
        report["interrupted"] = True
    write_reports(partial, report, [d.name if not single else "" for d in dirs])
    if complete:
        (partial / PARTIAL_MARKER).unlink()
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
        final = out
    else:
        final = partial
    if interrupted:
        raise KeyboardInterrupt(f"replay interrupted; partial output in {final}")
    return ReplayOutcome(final, report, complete)


def _run_one(
    bag: Path, out_dir: Path, settings: ReplaySettings, raise_errors: bool
) -> dict[str, Any]:
    try:
        return replay_bag(bag, out_dir, settings)
    except ReplayError as exc:
        if raise_errors:
            raise
        return {"bag": str(bag), "complete": False, "error": str(exc)}
    except Exception as exc:  # a bug or an I/O failure: keep the other bags' results
        log.exception("replay of %s failed", bag)
        return {"bag": str(bag), "complete": False, "error": f"{type(exc).__name__}: {exc}"}


def _combine(
    sections: list[dict[str, Any]],
    complete: bool,
    wall: float,
    single: bool,
    settings: ReplaySettings,
) -> dict[str, Any]:
    from rvm_ros import __version__

    report: dict[str, Any] = {
        "tool": f"rvm-ros replay {__version__}",
        "complete": complete,
        "wall_s": wall,
        "config": str(settings.config) if settings.config else None,
        "bags": sections,
    }
    # Read failures mean the result is not a full replay of the bag.
    report["read_errors"] = [e for s in sections for e in s.get("read_errors", [])]
    frames = sum(c["processed"] for s in sections for c in s.get("cameras", {}).values())
    report["processed"] = frames
    report["throughput_fps"] = frames / wall if wall > 0 else None
    if single:
        report["cameras"] = sections[0].get("cameras", {})
    per_video = [
        {k: (math.nan if v is None else v) for k, v in c["tapvid"]["metrics"].items()}
        for s in sections
        for c in s.get("cameras", {}).values()
        if "metrics" in c.get("tapvid", {})
    ]
    if per_video:
        from rvm_ros.tapvid import average_metrics

        report["tapvid_average"] = {
            "videos": len(per_video),
            "metrics": {
                k: (None if math.isnan(v) else v) for k, v in average_metrics(per_video).items()
            },
        }
    return report
