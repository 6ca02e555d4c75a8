"""``rvm-ros eval-tracking``: every tracker method on the same sequences, in one process.

Sequences come from :mod:`rvm_ros.tracking.benchmark` (real images under known camera
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
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rvm_ros.tracking.benchmark import (
    SPLITS,
    BenchmarkConfig,
    BenchmarkError,
    TrackingSequence,
    development_sources,
    make_sequences,
    sources_from_files,
)
from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.evaluate import METHODS, MethodRun, evaluate_sequences

__all__ = ["EvalTrackingSettings", "bag_sequences", "run_eval_tracking"]

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
            development images, see :func:`~rvm_ros.tracking.benchmark.development_sources`).
        bag: a bag with ``<image topic>/gt_tracks`` to evaluate instead of the benchmark.
        bag_topic: its image topic (default: the only one with ground truth).
        methods: which methods (default: all of :data:`~rvm_ros.tracking.evaluate.METHODS`).
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


def bag_sequences(path: str, topic: str | None) -> list[TrackingSequence]:
    """One sequence from a bag's image topic and its ``<topic>/gt_tracks`` ground truth.

    Frames stay at the bag's resolution; each ground-truth point is queried on the first
    frame where it is visible.

    Raises:
        BenchmarkError: no image topic with ground truth, or no usable point.
    """
    from rvm_ros.bags import rosbag2 as bags
    from rvm_ros.imaging.compressed import compressed_to_array
    from rvm_ros.imaging.image_msg import image_to_array

    with bags.BagReader(Path(path)) as reader:
        images = {
            t: k
            for t, k in reader.topics.items()
            if k in bags.IMAGE_TYPES
            and reader.topics.get(t + GT_SUFFIX) == bags.TRACKED_POINTS_TYPE
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
        frames: dict[int, np.ndarray] = {}
        gt: dict[int, dict[int, tuple[float, float, bool]]] = {}
        src_size: tuple[int, int] | None = None
        for m in reader.messages([image_topic, image_topic + GT_SUFFIX]):
            if m.msg is None:
                continue
            head = m.msg.header.stamp
            stamp = int(head.sec) * 10**9 + int(head.nanosec)
            if m.topic == image_topic:
                rgb = (
                    image_to_array(m.msg) if kind == bags.IMAGE_TYPE else compressed_to_array(m.msg)
                )
                src_size = rgb.shape[:2]
                frames[stamp] = np.ascontiguousarray(rgb)
            else:
                gt[stamp] = {
                    int(p.id): (float(p.x), float(p.y), bool(p.visible)) for p in m.msg.points
                }
    stamps = sorted(s for s in frames if s in gt)
    if len(stamps) < 2 or src_size is None:
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
    return [
        TrackingSequence(
            name=f"bag:{Path(path).name}{image_topic}",
            split="bag",
            frames=np.stack([frames[s] for s in stamps]),
            gt_xy=gt_xy,
            gt_visible=gt_vis,
            query_frames=queries,
        )
    ]


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


def _table(metrics: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| split | method | AJ | δx_avg | OA | ms/frame | p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]

    def f(v: Any, digits: int = 3) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"

    for split, methods in metrics.items():
        for m, v in methods.items():
            lines.append(
                f"| {split} | {m} | {f(v['average_jaccard'])} | "
                f"{f(v['average_pts_within_thresh'])} | {f(v['occlusion_accuracy'])} | "
                f"{f(v['ms_per_frame'], 2)} | {f(v['ms_p95'], 2)} |"
            )
        names = sorted({n for v in methods.values() for n in v.get("subsets", {})})
        for name in names:
            for m, v in methods.items():
                sv = v.get("subsets", {}).get(name)
                if sv is None:
                    continue
                lines.append(
                    f"| {split}: {name} | {m} | {f(sv['average_jaccard'])} | "
                    f"{f(sv['average_pts_within_thresh'])} | {f(sv['occlusion_accuracy'])} | | |"
                )
    return "\n".join(lines) + "\n"


def run_eval_tracking(
    settings: EvalTrackingSettings, out: str | os.PathLike[str], force: bool = False
) -> dict[str, Any]:
    """Run the evaluation and write the output folder (see the module docstring).

    Returns:
        The content of ``metrics.json``.

    Raises:
        BenchmarkError: bad sources or bag; OutputError: an unusable ``out``;
        CheckpointError and runtime errors from loading the model.
    """
    import torch

    from rvm_ros.fsutil import plan_output

    inputs = [*settings.sources, *([settings.bag] if settings.bag else [])]
    if not settings.checkpoint.startswith(("random:", "builtin:")):
        inputs.append(settings.checkpoint)
    plan = plan_output(out, inputs, force, what="--out")
    bc = settings.benchmark
    if settings.bag is not None:
        by_split = {"bag": bag_sequences(settings.bag, settings.bag_topic)}
    else:
        sources = (
            sources_from_files(settings.sources) if settings.sources else development_sources()
        )
        by_split = {s: make_sequences(bc, s, sources) for s in settings.splits}
    needs = any(m in ("hybrid", "propagation") for m in settings.methods)
    mh, mw = settings.model_size
    feats = _Features(settings.checkpoint, mh, mw) if needs else None
    pictures: dict[str, np.ndarray] = {}
    metrics: dict[str, dict[str, dict[str, Any]]] = {}
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

    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    result = {
        "checkpoint": settings.checkpoint,
        "model_id": None if feats is None else str(feats.info.model_id),
        "model_step_ms_median": None
        if feats is None or not feats.ms
        else float(np.median(feats.ms)),
        "benchmark": asdict(bc) if settings.bag is None else None,
        "bag": settings.bag,
        "sources": list(settings.sources) or "development",
        "tracker": asdict(settings.tracker),
        "tracker_threads": settings.tracker_threads,
        "model_size": list(settings.model_size),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "opencv": cv2.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
        "splits": clean(metrics),
    }
    try:
        work = plan.work
        work.mkdir()
        (work / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        (work / "tracking.md").write_text(_table(metrics))
        for split, img in pictures.items():
            cv2.imwrite(str(work / f"tracks_{split}.png"), img[:, :, ::-1])
    except BaseException:
        plan.discard()
        raise
    plan.commit()
    return result
