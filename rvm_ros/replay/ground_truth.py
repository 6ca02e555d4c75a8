"""Ground-truth tracks in a bag (``<image topic>/gt_tracks``): queries and TAP-Vid metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.pipeline import FrameInput, FrameResult
from rvm_ros.replay.records import TapvidResult
from rvm_ros.stamps import header_ns

if TYPE_CHECKING:
    from rvm_ros.pipeline import Processor

__all__ = [
    "GT_SUFFIX",
    "GroundTruth",
    "add_gt_queries",
    "read_ground_truth",
    "record_gt_predictions",
    "tapvid_result",
]

GT_SUFFIX = "/gt_tracks"


@dataclass
class GroundTruth:
    """Reference tracks of one camera: stamp → (ids, xy, visible)."""

    frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    gt_to_pred: dict[int, int] = field(default_factory=dict)  # -1: could not be queried
    rejected: dict[int, str] = field(default_factory=dict)
    query_index: dict[int, int] = field(default_factory=dict)  # gt id -> frame index
    # frame index (processed order) -> {gt id: (pred xy, pred visible)}
    predictions: list[tuple[int, dict[int, tuple[float, float, bool]]]] = field(
        default_factory=list
    )


def read_ground_truth(reader: bags.BagReader, topics: Mapping[str, str]) -> dict[str, GroundTruth]:
    """camera → GroundTruth for each image topic with a ``<topic>/gt_tracks`` topic."""
    out: dict[str, GroundTruth] = {}
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
        gt = out.setdefault(gt_topics[m.topic], GroundTruth())
        pts = m.msg.points
        ids = np.asarray([p.id for p in pts], np.int64)
        xy = np.asarray([[p.x, p.y] for p in pts], np.float64).reshape(-1, 2)
        vis = np.asarray([p.visible for p in pts], bool)
        gt.frames[header_ns(m.msg.header)] = (ids, xy, vis)
    return out


def tapvid_result(gt: GroundTruth, image_size: tuple[int, int] | None) -> TapvidResult:
    """TAP-Vid metrics of a camera's predictions at its ground-truth points (or why none)."""
    from rvm_ros.tracking.evaluation.tapvid import tapvid_metrics

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


def add_gt_queries(processor: Processor, gt: GroundTruth, frame: FrameInput) -> None:
    """Hand the ground-truth points first visible in ``frame`` to the tracker as queries."""
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


def record_gt_predictions(gt: GroundTruth, frame: FrameInput, out: FrameResult) -> None:
    """Record the tracker's predictions for the ground-truth points at ``frame``."""
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
