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

import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.pipeline import FrameInput, FrameResult, FrameSkip
from rvm_ros.replay.bag_setup import BagSetup, prepare_bag
from rvm_ros.replay.encoders import EncoderCache
from rvm_ros.replay.ground_truth import (
    add_gt_queries,
    record_gt_predictions,
    tapvid_result,
)
from rvm_ros.replay.records import BagSection, Plots
from rvm_ros.replay.settings import ReplaySettings
from rvm_ros.replay.threads import Prefetch, Sink, SkippedMessage
from rvm_ros.wire.encode import feature_map_fields, fill_message, tracked_points_fields

if TYPE_CHECKING:
    from rvm_ros.pipeline import ProcessingConfig
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
    setup = prepare_bag(Path(bag), settings, encoders)
    return _BagRun(setup, Path(out_dir), settings, on_frames).run(encoders)


# --------------------------------------------------------------------------- one bag


class _BagRun:
    """One bag's replay once the model is loaded: the read, process and write loop, and
    its report section.

    Reading and decoding run in a :class:`Prefetch` thread, writing the features bag and
    collecting plots in a :class:`Sink` thread; the loop batches frames, runs the
    Processor and keeps each camera's ledger (:class:`CameraLog`).
    """

    def __init__(
        self,
        setup: BagSetup,
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
