"""Replay with ground-truth tracks in the bag (``<image topic>/gt_tracks``): TAP-Vid metrics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from replay_helpers import small_settings

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.bags.make_bag import image_message
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


def test_ground_truth_tracks_give_tapvid_metrics(tmp_path: Path, sample_video: Path) -> None:
    _write_bag(tmp_path / "bag", sample_video)
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
