"""Running every method on the same sequences and scoring them."""

from __future__ import annotations

import numpy as np
import pytest

from rvm_ros.tracking.evaluation.evaluate import evaluate_sequences
from rvm_ros.tracking.evaluation.methods import METHODS, run_method
from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig
from rvm_ros.tracking.evaluation.sources import development_sources
from rvm_ros.tracking.evaluation.splits import make_sequences

CFG = BenchmarkConfig(num_sequences=1, num_frames=8, height=64, width=64, num_points=12)


@pytest.fixture(scope="module")
def seqs() -> dict[str, list]:  # type: ignore[type-arg]
    src = development_sources()
    return {s: make_sequences(CFG, s, src) for s in ("plain", "occluder")}


def _features(seq) -> np.ndarray:  # type: ignore[no-untyped-def]
    # Stand-in features with the network's grid (16-pixel cells): mean colour per cell.
    f = seq.frames.astype(np.float32).reshape(-1, 4, 16, 4, 16, 3).mean(axis=(2, 4))
    return np.ascontiguousarray(f)


def test_static_floor_never_moves_and_is_always_visible(seqs: dict[str, list]) -> None:  # type: ignore[type-arg]
    seq = seqs["plain"][0]
    run = run_method("static", seq, None)
    assert run.visible.all()
    np.testing.assert_allclose(run.xy, np.repeat(seq.query_xy[:, None], 8, axis=1), atol=1e-4)


def test_every_method_scores_in_range_and_lk_beats_the_floor(seqs: dict[str, list]) -> None:  # type: ignore[type-arg]
    out = evaluate_sequences(seqs["plain"], _features, METHODS)
    assert set(out) == set(METHODS)
    for m, v in out.items():
        for k in ("average_jaccard", "average_pts_within_thresh", "occlusion_accuracy"):
            assert 0.0 <= v[k] <= 1.0, (m, k, v[k])
        assert v["ms_per_frame"] >= 0.0 and v["sequences"] == 1
    assert out["opencv_lk_fb"]["average_jaccard"] > out["static"]["average_jaccard"]
    assert out["hybrid"]["average_jaccard"] > out["static"]["average_jaccard"]


def test_methods_see_the_same_queries(seqs: dict[str, list]) -> None:  # type: ignore[type-arg]
    seq = seqs["occluder"][0]
    for m in ("hybrid", "klt", "opencv_lk_fb", "raw_propagation"):
        run = run_method(m, seq, _features(seq))
        np.testing.assert_allclose(run.xy[:, 0], seq.query_xy, atol=0.5)
        assert run.visible[:, 0].all()


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        run_method("magic", make_sequences(CFG, "plain", development_sources())[0], None)


def test_reappearing_points_are_those_occluded_inside_the_view_and_seen_again() -> None:
    from rvm_ros.tracking.evaluation.evaluate import reappearing
    from rvm_ros.tracking.evaluation.sequence import TrackingSequence

    num_t = 8
    xy = np.full((4, num_t, 2), 10.0)
    vis = np.ones((4, num_t), bool)
    vis[0, 3:6] = False  # occluded in view, back on frame 6
    vis[1, 3:6] = False
    xy[1, 3:6] = -5.0  # out of the view: leaving and coming back is not an occlusion
    vis[2, 4:] = False  # occluded for good
    seq = TrackingSequence(
        name="t",
        split="occluder",
        frames=np.zeros((num_t, 32, 32, 3), np.uint8),
        gt_xy=xy,
        gt_visible=vis,
        query_frames=np.zeros(4, np.int64),
    )
    rows, queries = reappearing(seq)
    assert rows.tolist() == [0] and queries.tolist() == [5]  # scored from frame 6 on


def test_subsets_and_reappearing_points_are_scored_apart() -> None:
    src = development_sources()
    cfg = BenchmarkConfig(num_sequences=1, num_frames=16, height=64, width=64, num_points=16)
    seqs = make_sequences(cfg, "objects", src)
    out = evaluate_sequences(seqs, None, ["klt", "static"])
    for m in ("klt", "static"):
        subsets = out[m]["subsets"]
        assert {"on objects", "background"} <= set(subsets)
        for v in subsets.values():
            assert 0.0 <= v["average_jaccard"] <= 1.0
    # the static floor is right only on frame-0 positions: on objects it is far off
    assert out["static"]["subsets"]["on objects"]["average_pts_within_thresh"] < 0.5
