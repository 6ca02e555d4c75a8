"""The ``street`` split of the tracking benchmark: generated drives with parallax."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rvm_ros.cli import main
from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig
from rvm_ros.tracking.evaluation.splits import make_sequence, make_sequences

SMALL = BenchmarkConfig(seed=1, num_sequences=2, num_frames=8, height=64, width=80, num_points=12)


def test_street_sequences_are_exact_and_deterministic() -> None:
    a = make_sequence(SMALL, "street", 0, [])
    b = make_sequences(SMALL, "street", [])[0]
    assert a.split == "street" and a.frames.shape == (8, 64, 80, 3)
    assert a.gt_xy.shape[1:] == (8, 2) and a.gt_xy.shape[0] >= 8
    assert a.gt_visible[:, 0].all() and (a.query_frames == 0).all()
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.gt_xy, b.gt_xy)
    moved = np.linalg.norm(a.gt_xy[:, -1] - a.gt_xy[:, 0], axis=-1)[a.gt_visible[:, -1]]
    assert moved.size and moved.max() > 1.0  # the vehicle drives: points move
    c = make_sequence(SMALL, "street", 1, [])
    assert not np.array_equal(a.frames[-1], c.frames[-1])


def test_eval_tracking_runs_the_street_split(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    args = ["eval-tracking", "--checkpoint", "random:tiny", "--split", "street",
            "--sequences", "1", "--frames", "6", "--points", "8", "--height", "64",
            "--width", "64", "--methods", "klt,static", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["splits"]) == ["street"]
    assert set(metrics["splits"]["street"]) == {"klt", "static"}
    for method in metrics["splits"]["street"].values():
        assert 0.0 <= method["average_jaccard"] <= 1.0
