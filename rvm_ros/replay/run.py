"""Replay rosbag2 camera images through the node's own processing core, offline.

``replay()`` reads the image topics of one or more bags with ``rosbags``, converts each
message with the node's converters (:mod:`rvm_ros.imaging.decode`), batches frames with the
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.pipeline import FrameInput, FrameResult, FrameSkip
from rvm_ros.replay.config import build_config
from rvm_ros.replay.encoders import Encoder, EncoderCache
from rvm_ros.replay.ground_truth import (
    GroundTruth,
    add_gt_queries,
    read_ground_truth,
    record_gt_predictions,
    tapvid_result,
)
from rvm_ros.replay.ledger import CameraLog
from rvm_ros.replay.records import BagSection, Plots
from rvm_ros.replay.settings import ReplayError, ReplaySettings
from rvm_ros.replay.threads import Prefetch, Sink, SkippedMessage
from rvm_ros.replay.topics import resolve_topic
from rvm_ros.wire.encode import feature_map_fields, fill_message, tracked_points_fields

if TYPE_CHECKING:
    from rvm_ros.pipeline import ProcessingConfig, Processor
    from rvm_ros.pipeline.node_config import NodeConfig
    from rvm_ros.replay.scene_tokens import SceneTokensWriter
    from rvm_ros.wire.encode import FrameResultLike

__all__ = ["replay_bag"]

log = logging.getLogger(__name__)

# What the writing thread gets: a processed frame, or a SceneTokens message and its log time.
_Output = tuple[FrameInput, FrameResult] | tuple[object, int]


def _features_storage(reader: bags.BagReader) -> str:
    return reader.storage if reader.storage in bags.STORAGES else "mcap"


def replay_bag(
    bag: Path | str,
    out_dir: Path | str,
    settings: ReplaySettings,
    *,
    encoders: EncoderCache | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> BagSection:
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
) -> BagSection:
    import torch

    bag = Path(bag)
    reader, images = _open_bag(bag)
    cfg, topic_to_camera = build_config(images, settings)
    torch.set_num_threads(max(1, settings.threads))
    logs = {
        cam: CameraLog(cam, topic, images[topic]) for topic, cam in sorted(topic_to_camera.items())
    }
    ground_truth = read_ground_truth(reader, topic_to_camera)
    if ground_truth and not cfg.processing.tracking:
        log.warning("bag has ground-truth tracks but tracking is off in the config")
    report = _bag_header(bag, reader, images, cfg, topic_to_camera, settings)
    encoder, processor = _load_model(reader, cfg, len(topic_to_camera), settings, encoders, report)
    setup = _BagSetup(
        bag, reader, cfg, topic_to_camera, logs, ground_truth, encoder, processor, report
    )
    return _BagRun(setup, Path(out_dir), settings, on_frames).run(encoders)


# --------------------------------------------------------------------------- setup


def _open_bag(bag: Path) -> tuple[bags.BagReader, dict[str, str]]:
    """The open bag and its image topics (topic -> type); a one-line error if it has none."""
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
    return reader, images


def _bag_header(
    bag: Path,
    reader: bags.BagReader,
    images: dict[str, str],
    cfg: NodeConfig,
    topic_to_camera: dict[str, str],
    settings: ReplaySettings,
) -> BagSection:
    """The first keys of a bag's section: what was read and with which configuration."""
    return {
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
            k: v for k, v in asdict(cfg.processing).items() if k != "tracker" and v is not None
        },
    }


def _load_model(
    reader: bags.BagReader,
    cfg: NodeConfig,
    cameras: int,
    settings: ReplaySettings,
    encoders: EncoderCache,
    report: BagSection,
) -> tuple[Encoder, Processor]:
    """The encoder (from ``encoders``) and a warmed-up Processor; timings into ``report``.

    Raises:
        ReplayError: the encoder cannot be made or run (the reader is closed then).
    """
    from rvm_ros.pipeline import Processor
    from rvm_ros.runtime import create_encoder

    proc_cfg = cfg.processing
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
            max_batch=max(1, cameras),
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
    return encoder, processor


# --------------------------------------------------------------------------- one bag


@dataclass
class _BagSetup:
    """One bag ready for its loop: the open reader, configuration, ledgers and model."""

    bag: Path
    reader: bags.BagReader
    cfg: NodeConfig
    topic_to_camera: dict[str, str]
    logs: dict[str, CameraLog]
    ground_truth: dict[str, GroundTruth]
    encoder: Encoder
    processor: Processor
    report: BagSection


class _BagRun:
    """One bag's replay once the model is loaded: the read, process and write loop, and
    its report section.

    Reading and decoding run in a :class:`Prefetch` thread, writing the features bag and
    collecting plots in a :class:`Sink` thread; the loop batches frames, runs the
    Processor and keeps each camera's ledger (:class:`CameraLog`).
    """

    def __init__(
        self,
        setup: _BagSetup,
        out_dir: Path,
        settings: ReplaySettings,
        on_frames: Callable[[int], None] | None,
    ) -> None:
        from rvm_ros.replay.visuals import Visuals

        self.bag, self.reader, self.report = setup.bag, setup.reader, setup.report
        self.topic_to_camera = setup.topic_to_camera
        self.logs, self.ground_truth = setup.logs, setup.ground_truth
        self.encoder, self.processor = setup.encoder, setup.processor
        self.out_dir = out_dir
        self.settings = settings
        self.proc_cfg: ProcessingConfig = setup.cfg.processing
        self.storage = _features_storage(self.reader)
        self.report["features_bag"] = "features"
        self.store = bags.typestore()
        self.fmap_cls = self.store.types[bags.FEATURE_MAP_TYPE]
        self.tracks_cls = self.store.types[bags.TRACKED_POINTS_TYPE]
        self.visuals = Visuals(out_dir, enabled=settings.visuals)
        self.timing = dict.fromkeys(
            ("decode_s", "process_s", "write_s", "visuals_s", "step_s"), 0.0
        )
        self.steps = 0
        total = self.reader.indexed_count(self.topic_to_camera)
        bar = _progress(total or None, f"replay {self.bag.name}", settings.progress)
        self.bar = bar if on_frames is None else _Reported(bar, on_frames)
        self.scene: SceneTokensWriter | None = None
        if setup.cfg.scene_tokens.enabled:
            from rvm_ros.replay.scene_tokens import SceneTokensWriter

            self.scene = SceneTokensWriter(self.reader, setup.cfg, settings.node_name, self.store)

    # ------------------------------------------------------------------ writing side
    def write_output(self, writer: bags.BagWriter, item: _Output) -> None:
        """Write one output (in the writing thread): features, tracks, plots, or tokens."""
        frame, out = item
        if not isinstance(out, FrameResult):  # (SceneTokens message, log time)
            assert self.scene is not None
            writer.write(self.scene.topic, bags.SCENE_TOKENS_TYPE, frame, out)
            return
        assert isinstance(frame, FrameInput)
        header, _index, bag_time = frame.header
        t1 = time.perf_counter()
        node = self.settings.node_name
        # cast: wire's FrameResultLike declares settable fields; FrameResult is frozen
        res = cast("FrameResultLike", out)
        msg = fill_message(self.fmap_cls, feature_map_fields(res), header)
        writer.write(f"/{node}/{out.camera}/features", bags.FEATURE_MAP_TYPE, msg, bag_time)
        if out.tracks is not None:
            tmsg = fill_message(self.tracks_cls, tracked_points_fields(res), header)
            writer.write(f"/{node}/{out.camera}/tracks", bags.TRACKED_POINTS_TYPE, tmsg, bag_time)
        t2 = time.perf_counter()
        self.timing["write_s"] += t2 - t1
        self.visuals.add(frame, out)
        self.timing["visuals_s"] += time.perf_counter() - t2

    # ------------------------------------------------------------------ reading side
    def frames(self, prefetch: Prefetch) -> Iterator[FrameInput]:
        """The decoded frames in bag order; every message is entered in its camera's ledger."""
        for item in prefetch.items():
            if isinstance(item, FrameInput):
                _header, index, bag_time = item.header
                log_ = self.logs[item.camera]
                assert index == len(log_.frames)
                log_.frames.append(
                    {"index": index, "bag_time_ns": bag_time, "stamp_ns": item.stamp_ns}
                )
                log_.image_size = (int(item.image.shape[0]), int(item.image.shape[1]))
                yield item
            else:
                self._skipped(item)

    def _skipped(self, item: SkippedMessage) -> None:
        log_ = self.logs[item.camera]
        assert item.index == len(log_.frames)
        log_.frames.append(
            {"index": item.index, "bag_time_ns": item.bag_time_ns, "stamp_ns": item.stamp_ns}
        )
        log_.skip(item.index, item.reason, item.detail)
        self.bar.update(1)

    # ------------------------------------------------------------------ the loop
    def run(self, encoders: EncoderCache) -> BagSection:
        """Replay every frame, close the outputs, and return the bag's report section."""
        from rvm_ros.pipeline import group_batches

        start = time.perf_counter()
        self.reader.close()  # the reading thread opens its own
        out_dir, storage, store = self.out_dir, self.storage, self.store
        prefetch = Prefetch(self.bag, self.topic_to_camera, self.proc_cfg.max_image_pixels)
        sink: Sink[_Output] = Sink(
            lambda: bags.BagWriter(out_dir / "features", storage, store), self.write_output
        )
        try:
            frames = self.frames(prefetch)
            cameras = len(self.topic_to_camera)
            for batch in group_batches(frames, self.proc_cfg.max_batch_wait_ms, cameras):
                self._batch(batch, sink)
            self.report["complete"] = True
        except KeyboardInterrupt:
            # Stop cleanly: the outputs below are closed and the caller marks them partial.
            self.report["interrupted"] = True
        finally:
            prefetch.close()
            try:
                sink.close()  # everything computed so far goes into the features bag
            finally:
                wall = time.perf_counter() - start
                self.bar.close()
                encoders.release(self.encoder)
            self._finish_report(wall, prefetch)
        return self.report

    def _batch(self, batch: list[FrameInput], sink: Sink[_Output]) -> None:
        """One batch through the Processor; results to the ledgers and the writer."""
        for frame in batch:
            gt = self.ground_truth.get(frame.camera)
            if gt is not None and self.proc_cfg.tracking:
                add_gt_queries(self.processor, gt, frame)
        t0 = time.perf_counter()
        outputs = self.processor.process(batch)
        self.timing["process_s"] += time.perf_counter() - t0
        step_seen = False
        for frame, out in zip(batch, outputs, strict=True):
            _header, index, _bag_time = frame.header
            log_ = self.logs[frame.camera]
            if isinstance(out, FrameSkip):
                log_.skip(index, out.reason, out.detail)
                continue
            assert isinstance(out, FrameResult)
            if not step_seen:
                self.timing["step_s"] += out.step_ms / 1000.0
                self.steps += 1
                step_seen = True
            log_.step_ms.append(float(out.step_ms))
            log_.result(index, out)
            gt = self.ground_truth.get(frame.camera)
            if gt is not None:
                record_gt_predictions(gt, frame, out)
            sink.put((frame, out))
        if self.scene is not None:
            scene_msg = self.scene.step_message(batch, outputs)
            if scene_msg is not None:
                sink.put(scene_msg)
        self.bar.update(len(batch))

    # ------------------------------------------------------------------ the report
    def _finish_report(self, wall: float, prefetch: Prefetch) -> None:
        """Timings, throughput, per-camera summaries, ground truth, read errors, plots."""
        report, timing = self.report, self.timing
        timing["decode_s"] = prefetch.decode_s
        timing["wait_read_s"] = prefetch.wait_s
        report["wall_s"] = wall
        report["timing_s"] = timing
        report["steps"] = self.steps
        processed = sum(lg.processed for lg in self.logs.values())
        report["throughput_fps"] = processed / wall if wall > 0 else None
        report["model_step_fps"] = processed / timing["step_s"] if timing["step_s"] > 0 else None
        report["overhead_fraction"] = 1.0 - timing["step_s"] / wall if wall > 0 else None
        report["cameras"] = {cam: lg.summary(wall) for cam, lg in self.logs.items()}
        if self.scene is not None:
            report["scene_tokens"] = self.scene.summary()
        for cam, gt in self.ground_truth.items():
            report["cameras"][cam]["tapvid"] = (
                tapvid_result(gt, self.logs[cam].image_size)
                if self.proc_cfg.tracking
                else {"error": "tracking is off in the config; no predictions to score"}
            )
        report["read_errors"] = _unique(self.reader.errors + prefetch.errors)
        if report["read_errors"]:  # something could not be read: never a complete result
            report["complete"] = False
        try:
            report["plots"] = self.visuals.finish(report)
        except Exception as exc:  # plots must never hide the replay's result
            report["plots"] = Plots(error=f"{type(exc).__name__}: {exc}")


def _warm_up(proc_cfg: ProcessingConfig, encoder: Encoder) -> float:
    """One frame through a throw-away Processor on the same encoder (first calls allocate,
    import and compile), on a camera name no bag uses; its encoder state is then dropped.
    The replay's own Processor and cameras are untouched, so outputs do not change.
    """
    from rvm_ros import imaging  # noqa: F401 - imported here, not in the timed loop
    from rvm_ros.pipeline import Processor

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


class _Bar(Protocol):
    """What the replay uses of a progress bar."""

    def update(self, n: int) -> object: ...

    def close(self) -> object: ...


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Reported:
    """A progress bar that also tells ``on_frames`` (a worker's progress counter)."""

    def __init__(self, bar: _Bar, on_frames: Callable[[int], None]) -> None:
        self.bar = bar
        self.on_frames = on_frames

    def update(self, n: int) -> None:
        self.bar.update(n)
        self.on_frames(n)

    def close(self) -> None:
        self.bar.close()


def _progress(total: int | None, desc: str, enabled: bool) -> _Bar:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)
