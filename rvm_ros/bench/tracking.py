"""``rvm-ros eval-tracking``: every tracker method on the same sequences, in one process.

Sequences come from :mod:`rvm_ros.tracking.evaluation` (real images under known camera
motion, exact ground truth) or from a bag holding ``<image topic>/gt_tracks`` (at the
bag's own resolution). Every method gets the same full-resolution frames. RVM features
are computed once per sequence with the torch backend on the frames resized (stretched)
to the network input ``model_size``, as the node does (the model step is not counted in
any method's time); the trackers then run one after the other in this thread, with torch
and OpenCV limited to ``tracker_threads`` threads (default 1: the cost "on one core").

The output folder (built beside ``--out`` and renamed into place when complete) holds
``metrics.json`` (per split and method: ``average_jaccard``, ``average_pts_within_thresh``,
``occlusion_accuracy``, ``ms_per_frame`` and the other TAP-Vid metrics), ``tracking.md``
(the table) and ``tracks_<split>.png`` (each method's points over frames of the split's
first sequence: filled = visible, hollow = not visible, ground truth in the first row).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import cv2
import numpy as np

from rvm_ros.stamps import header_ns
from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.evaluation.evaluate import SplitMetrics, evaluate_sequences
from rvm_ros.tracking.evaluation.methods import FEATURE_METHODS, METHODS, MethodRun
from rvm_ros.tracking.evaluation.report import json_safe, markdown_table
from rvm_ros.tracking.evaluation.sequence import (
    SPLITS,
    BenchmarkConfig,
    BenchmarkError,
    TrackingSequence,
)
from rvm_ros.tracking.evaluation.sources import development_sources, sources_from_files
from rvm_ros.tracking.evaluation.splits import make_sequences

if TYPE_CHECKING:
    from rvm_ros.bags.rosbag2 import BagReader
    from rvm_ros.fsutil import OutputPlan

__all__ = ["EvalTrackingResult", "EvalTrackingSettings", "bag_sequences", "run_eval_tracking"]

GT_SUFFIX = "/gt_tracks"
_PNG_FRAMES = 4
_PNG_POINTS = 24


@dataclass(frozen=True)
class EvalTrackingSettings:
    """What ``rvm-ros eval-tracking`` runs.

    Attributes:
        checkpoint: RVM weights for the feature methods (path or ``random:<variant>``).
        splits: benchmark splits to run (ignored with ``bag``).
        benchmark: how the benchmark sequences are made.
        sources: image / video files to build the sequences from (default: the
            development images, see
            :func:`~rvm_ros.tracking.evaluation.sources.development_sources`).
        bag: a bag with ``<image topic>/gt_tracks`` to evaluate instead of the benchmark.
        bag_topic: its image topic (default: the only one with ground truth).
        methods: which methods (default: all of
            :data:`~rvm_ros.tracking.evaluation.methods.METHODS`).
        tracker: tracker settings shared by the package's methods.
        tracker_threads: torch / OpenCV threads while the trackers run.
        model_size: ``(height, width)`` of the network input the features are computed at
            (the node's ``model_height`` x ``model_width``; default: the shipped config's).
    """

    checkpoint: str = "builtin:default"
    splits: tuple[str, ...] = SPLITS
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    sources: tuple[str, ...] = ()
    bag: str | None = None
    bag_topic: str | None = None
    methods: tuple[str, ...] = METHODS
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    tracker_threads: int = 1
    model_size: tuple[int, int] = (128, 128)


class _Features:
    """RVM grid features of a sequence through the torch backend (one camera, reset first)."""

    def __init__(self, checkpoint: str, height: int, width: int) -> None:
        from rvm_ros.runtime import create_encoder

        self.encoder = create_encoder(
            checkpoint, backend="torch", height=height, width=width, max_batch=1
        )
        self.info = self.encoder.info
        self.size = (height, width)
        self.ms: list[float] = []

    def __call__(self, seq: TrackingSequence) -> np.ndarray:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        try:
            self.encoder.reset("eval")
            ps = int(self.info.patch_size)
            h, w = self.size
            rows = []
            for frame in seq.frames:
                net = frame
                if frame.shape[:2] != (h, w):  # the node's stretch to the network input
                    net = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
                t0 = time.perf_counter()
                tokens = self.encoder.step(net[None], ["eval"])[0]  # [1 + N, D]
                self.ms.append((time.perf_counter() - t0) * 1e3)
                rows.append(tokens[1:].reshape(h // ps, w // ps, -1))  # [h/ps, w/ps, D]
            out = np.stack(rows).astype(np.float32)
        finally:
            torch.set_num_threads(threads)
        return out


BagTracks = dict[int, dict[int, tuple[float, float, bool]]]
"""``{stamp ns: {point id: (x, y, visible)}}``: a bag's ground-truth tracks."""


def _image_topic(reader: BagReader, path: str, topic: str | None) -> tuple[str, str]:
    """``(topic, message type)`` of the bag's one image topic with ground truth."""
    from rvm_ros.bags import rosbag2 as bags

    images = {
        t: k
        for t, k in reader.topics.items()
        if k in bags.IMAGE_TYPES and reader.topics.get(t + GT_SUFFIX) == bags.TRACKED_POINTS_TYPE
    }
    if topic is not None:
        if topic not in images:
            raise BenchmarkError(f"{path}: no image topic {topic!r} with {topic}{GT_SUFFIX}")
        images = {topic: images[topic]}
    if len(images) != 1:
        names = ", ".join(sorted(images)) or "none"
        raise BenchmarkError(
            f"{path}: need exactly one image topic with {GT_SUFFIX} (found: {names}); "
            "choose one with --bag-topic"
        )
    ((image_topic, kind),) = images.items()
    return image_topic, kind


def _read_bag(
    reader: BagReader, image_topic: str, kind: str
) -> tuple[dict[int, np.ndarray], BagTracks]:
    """The topic's RGB frames and its ground truth, by stamp (undecodable messages skipped)."""
    from rvm_ros.bags import rosbag2 as bags
    from rvm_ros.imaging.compressed import compressed_to_array
    from rvm_ros.imaging.decode import image_to_array

    frames: dict[int, np.ndarray] = {}
    gt: BagTracks = {}
    for m in reader.messages([image_topic, image_topic + GT_SUFFIX]):
        if m.msg is None:
            continue
        stamp = header_ns(m.msg.header)
        if m.topic == image_topic:
            rgb = image_to_array(m.msg) if kind == bags.IMAGE_TYPE else compressed_to_array(m.msg)
            frames[stamp] = np.ascontiguousarray(rgb)
        else:
            gt[stamp] = {int(p.id): (float(p.x), float(p.y), bool(p.visible)) for p in m.msg.points}
    return frames, gt


def _bag_sequence(
    path: str, image_topic: str, frames: dict[int, np.ndarray], gt: BagTracks
) -> TrackingSequence:
    """The frames that have ground truth, each point queried where it is first visible."""
    stamps = sorted(s for s in frames if s in gt)
    if len(stamps) < 2:
        raise BenchmarkError(f"{path}: fewer than two frames of {image_topic} have ground truth")
    ids = sorted({i for s in stamps for i, (_, _, v) in gt[s].items() if v})
    if not ids:
        raise BenchmarkError(f"{path}: no ground-truth point is ever visible")
    num_p, num_t = len(ids), len(stamps)
    gt_xy = np.zeros((num_p, num_t, 2))
    gt_vis = np.zeros((num_p, num_t), bool)
    for t, s in enumerate(stamps):
        for r, i in enumerate(ids):
            if i in gt[s]:
                x, y, v = gt[s][i]
                gt_xy[r, t] = (x, y)
                gt_vis[r, t] = v
    queries = np.argmax(gt_vis, axis=1).astype(np.int64)
    return TrackingSequence(
        name=f"bag:{Path(path).name}{image_topic}",
        split="bag",
        frames=np.stack([frames[s] for s in stamps]),
        gt_xy=gt_xy,
        gt_visible=gt_vis,
        query_frames=queries,
    )


def bag_sequences(path: str, topic: str | None) -> list[TrackingSequence]:
    """One sequence from a bag's image topic and its ``<topic>/gt_tracks`` ground truth.

    Frames stay at the bag's resolution; each ground-truth point is queried on the first
    frame where it is visible.

    Raises:
        BenchmarkError: no image topic with ground truth, or no usable point.
    """
    from rvm_ros.bags import rosbag2 as bags

    with bags.BagReader(Path(path)) as reader:
        image_topic, kind = _image_topic(reader, path, topic)
        frames, gt = _read_bag(reader, image_topic, kind)
    return [_bag_sequence(path, image_topic, frames, gt)]


def _draw(seq: TrackingSequence, runs: dict[str, MethodRun]) -> np.ndarray:
    """RGB grid: rows ground truth + methods, columns frames spread over the sequence."""
    from rvm_ros.viz.tracks import draw_legend, draw_tracks

    num_t = seq.frames.shape[0]
    cols = sorted({round(i * (num_t - 1) / (_PNG_FRAMES - 1)) for i in range(_PNG_FRAMES)})
    pts = np.arange(min(_PNG_POINTS, seq.gt_xy.shape[0]))
    rows = [("ground truth", seq.gt_xy, seq.gt_visible)]
    rows += [(m, r.xy, r.visible) for m, r in runs.items()]
    tiles = []
    for name, xy, vis in rows:
        row = []
        for t in cols:
            img = draw_tracks(
                seq.frames[t], xy[pts, t, 0], xy[pts, t, 1], vis[pts, t], pts, 3, False
            )
            cv2.putText(
                img,
                f"{name} t={t}",
                (4, 14),
                cv2.FONT_HERSHEY_PLAIN,
                1.0,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
            row.append(img)
        tiles.append(np.concatenate(row, axis=1))
    grid = np.concatenate(tiles, axis=0)
    return draw_legend(grid)


class EvalTrackingResult(TypedDict):
    """The content of ``metrics.json`` (``nan`` written as ``null``)."""

    checkpoint: str
    model_id: str | None
    model_step_ms_median: float | None
    benchmark: dict[str, object] | None
    bag: str | None
    sources: list[str] | str
    tracker: dict[str, object]
    tracker_threads: int
    model_size: list[int]
    machine: dict[str, object]
    splits: object  # {split: {method: metrics}}, see evaluate_sequences


def _sequences(settings: EvalTrackingSettings) -> dict[str, list[TrackingSequence]]:
    """The sequences of every split to run (the bag's one sequence with ``bag``)."""
    if settings.bag is not None:
        return {"bag": bag_sequences(settings.bag, settings.bag_topic)}
    sources = sources_from_files(settings.sources) if settings.sources else development_sources()
    return {s: make_sequences(settings.benchmark, s, sources) for s in settings.splits}


def _evaluate(
    settings: EvalTrackingSettings,
    by_split: dict[str, list[TrackingSequence]],
    feats: _Features | None,
) -> tuple[dict[str, SplitMetrics], dict[str, np.ndarray]]:
    """Every method on every split with torch and OpenCV held to ``tracker_threads``:
    ``(metrics per split, picture of each split's first sequence)``."""
    import torch

    pictures: dict[str, np.ndarray] = {}
    metrics: dict[str, SplitMetrics] = {}
    threads = torch.get_num_threads()
    cv_threads = cv2.getNumThreads()
    torch.set_num_threads(settings.tracker_threads)
    cv2.setNumThreads(settings.tracker_threads)
    try:
        for split, seqs in by_split.items():

            def keep(seq: TrackingSequence, runs: dict[str, MethodRun], split: str = split) -> None:
                if split not in pictures:
                    pictures[split] = _draw(seq, runs)

            metrics[split] = evaluate_sequences(
                seqs, feats, settings.methods, settings.tracker, keep
            )
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    return metrics, pictures


def _machine() -> dict[str, object]:
    import torch

    return {
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
    }


def _result(
    settings: EvalTrackingSettings, feats: _Features | None, metrics: dict[str, SplitMetrics]
) -> EvalTrackingResult:
    return {
        "checkpoint": settings.checkpoint,
        "model_id": None if feats is None else str(feats.info.model_id),
        "model_step_ms_median": None
        if feats is None or not feats.ms
        else float(np.median(feats.ms)),
        "benchmark": asdict(settings.benchmark) if settings.bag is None else None,
        "bag": settings.bag,
        "sources": list(settings.sources) or "development",
        "tracker": asdict(settings.tracker),
        "tracker_threads": settings.tracker_threads,
        "model_size": list(settings.model_size),
        "machine": _machine(),
        "splits": json_safe(metrics),
    }


def _write(
    plan: OutputPlan,
    result: EvalTrackingResult,
    metrics: dict[str, SplitMetrics],
    pictures: dict[str, np.ndarray],
) -> None:
    """The output folder, built in ``plan.work`` and renamed into place when complete."""
    try:
        work = plan.work
        work.mkdir()
        (work / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        (work / "tracking.md").write_text(markdown_table(metrics))
        for split, img in pictures.items():
            cv2.imwrite(str(work / f"tracks_{split}.png"), img[:, :, ::-1])
    except BaseException:
        plan.discard()
        raise
    plan.commit()


def run_eval_tracking(
    settings: EvalTrackingSettings, out: str | os.PathLike[str], force: bool = False
) -> EvalTrackingResult:
    """Run the evaluation and write the output folder (see the module docstring).

    Returns:
        The content of ``metrics.json``.

    Raises:
        BenchmarkError: bad sources or bag; OutputError: an unusable ``out``;
        CheckpointError and runtime errors from loading the model.
    """
    from rvm_ros.fsutil import plan_output

    inputs = [*settings.sources, *([settings.bag] if settings.bag else [])]
    if not settings.checkpoint.startswith(("random:", "builtin:")):
        inputs.append(settings.checkpoint)
    plan = plan_output(out, inputs, force, what="--out")
    by_split = _sequences(settings)
    needs = any(m in FEATURE_METHODS for m in settings.methods)
    mh, mw = settings.model_size
    feats = _Features(settings.checkpoint, mh, mw) if needs else None
    metrics, pictures = _evaluate(settings, by_split, feats)
    result = _result(settings, feats, metrics)
    _write(plan, result, metrics, pictures)
    return result
