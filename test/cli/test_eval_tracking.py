"""`rvm-ros eval-tracking`: all methods in one run, its outputs, a bag with ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.bags.make_bag import image_message
from rvm_ros.cli import main
from rvm_ros.tracking.evaluation.methods import METHODS
from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig
from rvm_ros.tracking.evaluation.sources import development_sources
from rvm_ros.tracking.evaluation.splits import make_sequence

SMALL = [
    *("--sequences", "1", "--frames", "6", "--points", "8", "--height", "64", "--width", "64"),
    *("--model-size", "64x64"),
]


def test_small_run_writes_metrics_table_and_pictures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    assert main(["eval-tracking", "--checkpoint", "random:tiny", *SMALL, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model_id"] == "tiny-random0"
    assert set(metrics["splits"]) == {"plain", "occluder", "gap", "objects"}
    for split in metrics["splits"].values():
        assert set(split) == set(METHODS)
        for v in split.values():
            for key in ("average_jaccard", "average_pts_within_thresh", "occlusion_accuracy"):
                assert 0.0 <= v[key] <= 1.0
            assert v["ms_per_frame"] >= 0.0
    table = (out / "tracking.md").read_text()
    assert table.count("| plain |") == len(METHODS) and "| occluder | hybrid |" in table
    # objects: points on the objects and on the background reported apart, for every method
    assert table.count("| objects: on objects |") == len(METHODS)
    assert table.count("| objects: background |") == len(METHODS)
    objects = metrics["splits"]["objects"]["opencv_lk_fb"]["subsets"]
    assert {"on objects", "background"} <= set(objects)
    assert metrics["model_size"] == [64, 64]
    assert (out / "tracks_plain.png").stat().st_size > 1000
    assert "| occluder | static |" in capsys.readouterr().out
    # An existing output is refused in one line and kept; --force replaces it.
    before = (out / "metrics.json").read_text()
    assert main(["eval-tracking", "--checkpoint", "random:tiny", *SMALL, "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_one_split_and_a_subset_of_methods(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    args = ["eval-tracking", *SMALL, "--split", "occluder", "--methods", "klt,static"]
    assert main([*args, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["splits"]) == ["occluder"]
    assert set(metrics["splits"]["occluder"]) == {"klt", "static"}
    assert metrics["model_id"] is None  # no feature method: no model loaded


def test_tracker_settings_reach_the_run_and_bad_ones_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    args = ["eval-tracking", *SMALL, "--split", "gap", "--methods", "hybrid"]
    settings = ["--tracker", "feature_weight=0", "--tracker", "feature_relocalise=true"]
    assert main([*args, *settings, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tracker"]["feature_weight"] == 0 and metrics["tracker"]["feature_relocalise"]
    assert list(metrics["splits"]) == ["gap"]
    for bad, says in [
        ("fov=3", "expected KEY=VALUE"),
        ("feature_weight", "expected KEY=VALUE"),
        ("feature_weight=2", "feature_weight must be in"),
    ]:
        code = main([*args, "--tracker", bad, "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_bag_with_ground_truth_tracks(tmp_path: Path) -> None:
    cfg = BenchmarkConfig(num_sequences=1, num_frames=6, height=64, width=96, num_points=6)
    seq = make_sequence(cfg, "occluder", 0, development_sources())
    store = bags.typestore()
    header = store.types["std_msgs/msg/Header"]
    time_cls = store.types["builtin_interfaces/msg/Time"]
    points_cls = store.types[bags.TRACKED_POINTS_TYPE]
    point_cls = store.types[bags.TRACKED_POINT_TYPE]
    topic = "/cam/image_raw"
    with bags.BagWriter(tmp_path / "bag") as writer:
        for t in range(cfg.num_frames):
            stamp = 10**9 + t * 50_000_000
            msgtype, msg = image_message(store, seq.frames[t], stamp, "cam")
            writer.write(topic, msgtype, msg, stamp)
            pts = [
                point_cls(
                    id=i,
                    x=float(seq.gt_xy[i, t, 0]),
                    y=float(seq.gt_xy[i, t, 1]),
                    visible=bool(seq.gt_visible[i, t]),
                    confidence=1.0,
                )
                for i in range(cfg.num_points)
            ]
            head = header(stamp=time_cls(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam")
            writer.write(
                topic + "/gt_tracks",
                bags.TRACKED_POINTS_TYPE,
                points_cls(header=head, camera="cam", seq=t, points=pts),
                stamp,
            )
    out = tmp_path / "eval"
    args = ["eval-tracking", "--bag", str(tmp_path / "bag"), "--methods", "klt,opencv_lk_fb,static"]
    assert main([*args, "--height", "64", "--width", "96", "--out", str(out)]) == 0
    bag_metrics = json.loads((out / "metrics.json").read_text())["splits"]["bag"]
    # Same frames and ground truth as the sequence itself: the same scores.
    from rvm_ros.tracking.evaluation.evaluate import evaluate_sequences

    direct = evaluate_sequences([seq], None, ["klt", "opencv_lk_fb", "static"])
    for m in ("klt", "opencv_lk_fb", "static"):
        assert bag_metrics[m]["average_jaccard"] == pytest.approx(direct[m]["average_jaccard"])


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-tracking", "--methods", "magic", "--out", str(tmp_path / "o")]) == 2
    assert "unknown magic" in capsys.readouterr().err
    assert main(["eval-tracking", "--frames", "1", "--out", str(tmp_path / "o")]) == 2
    assert "num_frames must be" in capsys.readouterr().err
    assert (
        main(["eval-tracking", "--bag", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "no such bag" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
