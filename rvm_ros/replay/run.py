"""Replay rosbag2 camera images through the node's own processing core, offline.

``replay()`` reads the image topics of one or more bags with ``rosbags``, converts each
message with the node's converters (:mod:`rvm_ros.imaging.image_msg`), batches frames with the
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

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.replay.config import build_config
from rvm_ros.replay.encoders import EncoderCache
from rvm_ros.replay.ground_truth import (
    _add_gt_queries,
    _read_ground_truth,
    _record_gt_predictions,
    _tapvid,
)
from rvm_ros.replay.ledger import _CameraLog
from rvm_ros.replay.settings import ReplayError, ReplaySettings
from rvm_ros.replay.threads import _Prefetch, _Sink
from rvm_ros.replay.topics import resolve_topic

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- setup


# --------------------------------------------------------------------------- per camera


# --------------------------------------------------------------------------- ground truth


# --------------------------------------------------------------------------- one bag


def _features_storage(reader: bags.BagReader) -> str:
    return reader.storage if reader.storage in bags.STORAGES else "mcap"


def replay_bag(
    bag: Path | str,
    out_dir: Path | str,
    settings: ReplaySettings,
    *,
    encoders: EncoderCache | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Replay one bag into ``out_dir`` (which must exist); returns its report section.

    Torch runs on ``settings.threads`` CPU threads meanwhile (restored afterwards). On
    KeyboardInterrupt the outputs written so far are closed and valid, and the section
    says ``"interrupted": true`` (:func:`replay` then marks the output partial).

    Args:
        bag: The rosbag2 folder or file.
        out_dir: Where its outputs go.
        settings: What to run.
        encoders: Keep the encoder for the next bag (a worker that takes bag after bag
            loads the model once); every camera state is cleared between bags, so the
            outputs equal those of a fresh encoder. Default: one encoder per bag.
        on_frames: Called with the number of input frames just handled (progress);
            a KeyboardInterrupt it raises stops the bag like Ctrl-C.

    Raises:
        ReplayError: the bag cannot be opened or its topics do not fit the config.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        return _replay_bag(bag, out_dir, settings, encoders or EncoderCache(keep=False), on_frames)
    finally:
        torch.set_num_threads(threads)


def _replay_bag(
    bag: Path | str,
    out_dir: Path | str,
    settings: ReplaySettings,
    encoders: EncoderCache,
    on_frames: Callable[[int], None] | None,
) -> dict[str, Any]:
    import torch

    from rvm_ros.pipeline import FrameResult, FrameSkip, Processor, group_batches
    from rvm_ros.replay.report import Visuals
    from rvm_ros.runtime import create_encoder
    from rvm_ros.wire.encode import feature_map_fields, fill_message, tracked_points_fields

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
    t_load = time.perf_counter()
    try:
        encoder = encoders.get(
            create_encoder,
            cfg.checkpoint,
            cfg.backend,
            cfg.precision,
            cfg.device or None,
            height=proc_cfg.model_height,
            width=proc_cfg.model_width,
            max_batch=max(1, len(topic_to_camera)),
            threads=max(1, settings.threads),  # onnxruntime / openvino too, not all cores
        )
    except Exception as exc:  # unreadable checkpoint, backend unavailable, bad size, ...
        reader.close()
        raise ReplayError(
            f"cannot create the {cfg.backend} encoder for {cfg.checkpoint}: {exc}"
        ) from exc
    report["model_load_s"] = time.perf_counter() - t_load
    report["encoder"] = encoder.info.as_dict()
    try:
        processor = Processor(proc_cfg, encoder)
        report["warmup_s"] = _warm_up(proc_cfg, encoder)
    except Exception as exc:
        encoders.release(encoder)
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
    if on_frames is not None:
        bar = _Reported(bar, on_frames)

    scene = None
    if cfg.scene_tokens.enabled:
        from rvm_ros.replay.scene_tokens import SceneTokensWriter

        scene = SceneTokensWriter(reader, cfg, settings.node_name, store)

    def write_result(writer: bags.BagWriter, frame: Any, out: Any) -> None:
        if out is None and scene is not None:  # frame = (SceneTokens message, log time)
            writer.write(scene.topic, bags.SCENE_TOKENS_TYPE, frame[0], frame[1])
            return
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
            if scene is not None:
                scene_msg = scene.step_message(batch, outputs)
                if scene_msg is not None:
                    sink.put(scene_msg, None)
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
            encoders.release(encoder)
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
        if scene is not None:
            report["scene_tokens"] = scene.summary()
        for cam, gt in ground_truth.items():
            report["cameras"][cam]["tapvid"] = (
                _tapvid(gt, logs[cam].image_size)
                if proc_cfg.tracking
                else {"error": "tracking is off in the config; no predictions to score"}
            )
        report["read_errors"] = _unique(reader.errors + prefetch.errors)
        if report["read_errors"]:  # something could not be read: never a complete result
            report["complete"] = False
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


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Reported:
    """A progress bar that also tells ``on_frames`` (a worker's progress counter)."""

    def __init__(self, bar: Any, on_frames: Callable[[int], None]) -> None:
        self.bar = bar
        self.on_frames = on_frames

    def update(self, n: int) -> None:
        self.bar.update(n)
        self.on_frames(n)

    def close(self) -> None:
        self.bar.close()


def _progress(total: int | None, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)


# --------------------------------------------------------------------------- many bags
