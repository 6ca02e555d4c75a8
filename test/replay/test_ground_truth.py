"""Replay with ground-truth tracks in the bag (``<image topic>/gt_tracks``): TAP-Vid metrics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from replay_helpers import small_settings

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.bags.make_bag import image_message
from rvm_ros.replay.ground_truth import GroundTruth, tapvid_result
from rvm_ros.replay.workers import replay

TOPIC = "/cam/image_raw"
T = 10
SHIFT = 2  # pixels per frame, to the right


def _write_bag(path: Path, video: Path) -> np.ndarray:
    """A real frame panned SHIFT px/frame; GT points move with it. Returns gt xy [P, T, 2]."""
    cap = cv2.VideoCapture(str(video))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    base = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[:, :160]  # 144x160
    starts = np.array([[40.5, 40.5], [80.5, 60.5], [100.5, 100.5], [60.5, 110.5]])
    store = bags.typestore()
    header = store.types["std_msgs/msg/Header"]
    time_cls = store.types["builtin_interfaces/msg/Time"]
    points_cls = store.types[bags.TRACKED_POINTS_TYPE]
    point_cls = store.types[bags.TRACKED_POINT_TYPE]
    gt = np.zeros((len(starts), T, 2))
    with bags.BagWriter(path) as writer:
        for t in range(T):
            shifted = np.roll(base, SHIFT * t, axis=1)
            stamp = 10**9 + t * 50_000_000
            msgtype, msg = image_message(store, shifted, stamp, "cam")
            writer.write(TOPIC, msgtype, msg, stamp)
            pts = []
            for i, (x, y) in enumerate(starts):
                gt[i, t] = (x + SHIFT * t, y)
                # point 3 is only given (visible) from frame 2 on
                visible = not (i == 3 and t < 2)
                pts.append(
                    point_cls(id=100 + i, x=gt[i, t, 0], y=y, visible=visible, confidence=1.0)
                )
            head = header(stamp=time_cls(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam")
            writer.write(
                TOPIC + "/gt_tracks",
                bags.TRACKED_POINTS_TYPE,
                points_cls(header=head, camera="cam", seq=t, points=pts),
                stamp,
            )
    return gt


def _count_by_hand(features: Path, gt: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """Occlusion accuracy and mean pts-within over {1, 2, 4, 8, 16} px, by plain counting.

    Ground-truth point i (ids 100 + i) is queried where it is first visible (frame 0, or
    2 for point 3); the tracker numbers its tracks in query order. Pairs after the query
    frame count; every ground-truth point is visible there; distances in 256x256 pixels.
    """
    with bags.BagReader(features) as reader:
        frames = [m.msg for m in reader.messages(["/rvm/cam/tracks"])]
    order: list[int] = []  # predicted ids in the order they appear
    for msg in frames:
        order += sorted(p.id for p in msg.points if p.id not in order)
    query = {0: 0, 1: 0, 2: 0, 3: 2}
    agree = total = 0
    hits = {d: 0 for d in (1, 2, 4, 8, 16)}
    for i, pred_id in enumerate(order):
        for t in range(query[i] + 1, len(frames)):
            (p,) = [p for p in frames[t].points if p.id == pred_id]
            total += 1
            agree += int(bool(p.visible))  # ground truth: visible on every counted frame
            dx = (p.x - gt[i, t, 0]) * 256 / width
            dy = (p.y - gt[i, t, 1]) * 256 / height
            for d in hits:
                hits[d] += int(dx * dx + dy * dy < d * d)
    assert total == 3 * (T - 1) + (T - 3)
    return agree / total, sum(h / total for h in hits.values()) / len(hits)


def test_ground_truth_tracks_give_tapvid_metrics(tmp_path: Path, sample_video: Path) -> None:
    gt = _write_bag(tmp_path / "bag", sample_video)
    settings = small_settings(params={"track_grid": 0, "model_width": 80, "model_height": 64})
    outcome = replay([tmp_path / "bag"], tmp_path / "out", settings)
    assert outcome.complete
    cam = outcome.report["cameras"]["cam"]
    # the gt topic is not an image topic: only the camera's frames are in the ledger
    assert cam["frames_in"] == T and cam["processed"] == T
    tap = cam["tapvid"]
    assert tap["points"] == 4 and tap["frames"] == T
    metrics = tap["metrics"]
    for name in ("occlusion_accuracy", "average_jaccard", "average_pts_within_thresh"):
        assert 0.0 <= metrics[name] <= 1.0, (name, metrics[name])
    # The same numbers counted by hand from the predictions the replay wrote.
    occ, within = _count_by_hand(tmp_path / "out" / "features", gt, width=160, height=144)
    assert metrics["occlusion_accuracy"] == pytest.approx(occ, abs=1e-12)
    assert metrics["average_pts_within_thresh"] == pytest.approx(within, abs=1e-12)
    # The tracker got one query per ground-truth point: 4 tracks, the 4th starting later.
    assert cam["tracks"]["count"] == 4
    lifetimes = cam["tracks"]["lifetime_frames"]
    assert (lifetimes["max"], lifetimes["min"]) == (T, T - 2)
    # The predictions in the features bag start at the query positions.
    with bags.BagReader(tmp_path / "out" / "features") as reader:
        tracks = [m.msg for m in reader.messages(["/rvm/cam/tracks"])]
    first = {p.id: (p.x, p.y) for p in tracks[0].points}
    assert len(first) == 3
    md = (tmp_path / "out" / "report.md").read_text()
    assert "TAP-Vid (cam)" in md
    avg = outcome.report["tapvid_average"]
    assert avg["videos"] == 1 and avg["metrics"] == metrics  # one stream: its own numbers
    assert "TAP-Vid over 1 camera stream(s)" in md


def test_replay_metrics_of_a_hand_computed_case() -> None:
    """Two points, three frames, a 256x256 image (no rescaling): every number by hand.

    Point 100 is queried at frame 0 and predicted exactly, but called occluded at frame 1;
    point 101 is visible from frame 1 (its query) and predicted 3 px off at frame 2.
    Evaluated pairs (after the query): 100@1, 100@2, 101@2.
    occlusion accuracy 2/3; within 1 and 2 px: 2/3, within 4, 8, 16 px: 3/3, so the mean
    is 13/15; Jaccard at 1 and 2 px: TP 1 (100@2), FP 1 (101@2), FN 2 (100@1, 101@2) = 1/4,
    at 4, 8, 16 px: TP 2, FP 0, FN 1 (100@1) = 2/3, so AJ = (2 * 1/4 + 3 * 2/3) / 5 = 1/2.
    """
    s0, s1, s2 = 10, 20, 30  # stamps
    ids = np.array([100, 101])
    gt = GroundTruth(
        frames={
            s0: (ids, np.array([[50.0, 60.0], [0.0, 0.0]]), np.array([True, False])),
            s1: (ids, np.array([[52.0, 60.0], [120.0, 80.0]]), np.array([True, True])),
            s2: (ids, np.array([[54.0, 60.0], [124.0, 80.0]]), np.array([True, True])),
        },
        gt_to_pred={100: 7, 101: 8},
        query_index={100: s0, 101: s1},
        predictions=[
            (s0, {100: (50.0, 60.0, True)}),
            (s1, {100: (52.0, 60.0, False), 101: (120.0, 80.0, True)}),
            (s2, {100: (54.0, 60.0, True), 101: (127.0, 80.0, True)}),
        ],
    )
    out = tapvid_result(gt, (256, 256))
    assert (out["points"], out["frames"]) == (2, 3)
    m = out["metrics"]
    assert m["occlusion_accuracy"] == pytest.approx(2 / 3)
    assert [m[f"pts_within_{d}"] for d in (1, 2, 4, 8, 16)] == pytest.approx(
        [2 / 3, 2 / 3, 1.0, 1.0, 1.0]
    )
    assert m["average_pts_within_thresh"] == pytest.approx(13 / 15)
    assert [m[f"jaccard_{d}"] for d in (1, 2, 4, 8, 16)] == pytest.approx(
        [1 / 4, 1 / 4, 2 / 3, 2 / 3, 2 / 3]
    )
    assert m["average_jaccard"] == pytest.approx(1 / 2)
