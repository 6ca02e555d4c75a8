"""TAP-Vid metrics against small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rvm_ros.tracking.evaluation.tapvid import (
    THRESHOLDS,
    average_metrics,
    metric_names,
    tapvid_metrics,
)


def _track(num_points: int = 2, num_frames: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth on a 256x256 image: point p at (10 + 20 p + 3 t, 40 + 5 t), all visible."""
    t = np.arange(num_frames, dtype=np.float64)
    xy = np.stack(
        [np.stack([10 + 20 * p + 3 * t, 40 + 5 * t], axis=-1) for p in range(num_points)]
    )  # [P, T, 2]
    return xy, np.ones((num_points, num_frames), dtype=bool)


def test_perfect_prediction_scores_one() -> None:
    gt, vis = _track()
    vis[1, 3] = False  # an occluded ground-truth frame, predicted occluded as well
    m = tapvid_metrics(gt, vis, gt.copy(), vis.copy(), [0, 0], (256, 256))
    assert list(m) == metric_names()
    assert all(v == 1.0 for v in m.values()), m


def test_query_frame_is_not_evaluated() -> None:
    gt, vis = _track(num_points=1, num_frames=4)
    pred = gt.copy()
    pred[0, 0] += 100.0  # wrong only on the query frame
    pred_vis = vis.copy()
    pred_vis[0, 0] = False
    m = tapvid_metrics(gt, vis, pred, pred_vis, [0], (256, 256))
    assert m["average_jaccard"] == 1.0
    assert m["occlusion_accuracy"] == 1.0
    # ...but the same error on frame 1 counts: 1 of 3 evaluated frames is wrong.
    pred = gt.copy()
    pred[0, 1] += 100.0
    m = tapvid_metrics(gt, vis, pred, vis.copy(), [0], (256, 256))
    assert m["pts_within_16"] == pytest.approx(2 / 3)
    # TP 2, FP 1 (visible but far), FN 1 (the same frame): 2 / 4.
    assert m["jaccard_16"] == pytest.approx(0.5)


def test_first_mode_skips_frames_before_the_query() -> None:
    gt, vis = _track(num_points=1, num_frames=5)
    pred = gt.copy()
    pred[0, :2] += 50.0  # wrong before and on the query frame 2
    m_first = tapvid_metrics(gt, vis, pred, vis.copy(), [2], (256, 256))
    assert m_first["average_pts_within_thresh"] == 1.0
    m_strided = tapvid_metrics(gt, vis, pred, vis.copy(), [2], (256, 256), query_mode="strided")
    # strided: frames 0, 1, 3, 4 evaluated, frames 0 and 1 wrong.
    assert m_strided["average_pts_within_thresh"] == pytest.approx(0.5)


def test_default_query_is_first_visible_frame() -> None:
    gt, vis = _track(num_points=2, num_frames=4)
    vis[0, 0] = False  # point 0 first seen on frame 1
    pred = gt.copy()
    pred[0, 1] += 40.0  # only wrong on point 0's (implicit) query frame
    m = tapvid_metrics(gt, vis, pred, vis.copy(), None, (256, 256))
    assert m["average_jaccard"] == 1.0
    assert m["occlusion_accuracy"] == 1.0
    m_explicit = tapvid_metrics(gt, vis, pred, vis.copy(), [0, 0], (256, 256))
    assert m_explicit["pts_within_16"] == pytest.approx(5 / 6)


def test_all_occluded_prediction() -> None:
    gt, vis = _track(num_points=2, num_frames=4)
    vis[0, 2] = False  # one ground-truth occlusion among the 6 evaluated pairs
    pred_vis = np.zeros_like(vis)
    m = tapvid_metrics(gt, vis, gt.copy(), pred_vis, [0, 0], (256, 256))
    # Positions are exact, so position accuracy is perfect regardless of visibility...
    assert m["average_pts_within_thresh"] == 1.0
    # ...but nothing predicted visible: no true positives, Jaccard 0.
    assert m["average_jaccard"] == 0.0
    assert m["occlusion_accuracy"] == pytest.approx(1 / 6)


def test_off_by_three_pixels_counts_for_4_8_16_only() -> None:
    gt, vis = _track(num_points=1, num_frames=3)
    pred = gt.copy()
    pred[0, 1:, 0] += 3.0  # every evaluated frame 3 px to the right
    m = tapvid_metrics(gt, vis, pred, vis.copy(), [0], (256, 256))
    for d in THRESHOLDS:
        expect = 1.0 if d > 3 else 0.0
        assert m[f"pts_within_{d}"] == expect, d
        # Beyond the threshold a visible prediction is a FP and a FN: 0 / (0 + 2 + 2).
        assert m[f"jaccard_{d}"] == expect, d
    assert m["average_pts_within_thresh"] == pytest.approx(3 / 5)
    assert m["average_jaccard"] == pytest.approx(3 / 5)


def test_threshold_is_strict() -> None:
    gt, vis = _track(num_points=1, num_frames=2)
    pred = gt.copy()
    pred[0, 1, 1] += 4.0  # exactly 4 px: not within 4
    m = tapvid_metrics(gt, vis, pred, vis.copy(), [0], (256, 256))
    assert m["pts_within_4"] == 0.0
    assert m["pts_within_8"] == 1.0


def test_positions_are_scaled_to_256() -> None:
    # A 512 wide x 128 high video: 3 px in x is 1.5 px at 256, 3 px in y is 6 px.
    gt, vis = _track(num_points=1, num_frames=2)
    pred_x = gt.copy()
    pred_x[0, 1, 0] += 3.0
    m = tapvid_metrics(gt, vis, pred_x, vis.copy(), [0], (128, 512))
    assert [m[f"pts_within_{d}"] for d in THRESHOLDS] == [0.0, 1.0, 1.0, 1.0, 1.0]
    pred_y = gt.copy()
    pred_y[0, 1, 1] += 3.0
    m = tapvid_metrics(gt, vis, pred_y, vis.copy(), [0], (128, 512))
    assert [m[f"pts_within_{d}"] for d in THRESHOLDS] == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_mixed_case_by_hand() -> None:
    # One point, query frame 0, frames 1..4 evaluated (256x256, thresholds in pixels):
    #   f1: gt visible, pred visible, 0.5 px off   -> within all
    #   f2: gt visible, pred occluded, exact        -> within all, but FN
    #   f3: gt occluded, pred visible               -> FP at every threshold
    #   f4: gt visible, pred visible, 10 px off     -> within 16 only; else FP + FN
    gt = np.zeros((1, 5, 2))
    gt[0, :, 0] = [50, 60, 70, 80, 90]
    gt[0, :, 1] = 100
    gt_vis = np.array([[True, True, True, False, True]])
    pred = gt.copy()
    pred[0, 1, 0] += 0.5
    pred[0, 3] = [5.0, 5.0]
    pred[0, 4, 1] += 10.0
    pred_vis = np.array([[True, True, False, True, True]])
    m = tapvid_metrics(gt, gt_vis, pred, pred_vis, [0], (256, 256))
    assert m["occlusion_accuracy"] == pytest.approx(2 / 4)
    for d in (1, 2, 4, 8):
        assert m[f"pts_within_{d}"] == pytest.approx(2 / 3), d
        # TP f1; FP f3, f4; FN f2, f4 -> 1 / 5
        assert m[f"jaccard_{d}"] == pytest.approx(1 / 5), d
    assert m["pts_within_16"] == 1.0
    # TP f1, f4; FP f3; FN f2 -> 2 / 4
    assert m["jaccard_16"] == pytest.approx(2 / 4)
    assert m["average_jaccard"] == pytest.approx((4 * 0.2 + 0.5) / 5)


def test_occluded_ground_truth_may_hold_nan() -> None:
    gt, vis = _track(num_points=1, num_frames=3)
    vis[0, 2] = False
    gt[0, 2] = np.nan
    pred = gt.copy()
    pred_vis = vis.copy()
    m = tapvid_metrics(gt, vis, pred, pred_vis, [0], (256, 256))
    assert m["average_jaccard"] == 1.0


def test_nothing_to_count_is_nan() -> None:
    gt, vis = _track(num_points=1, num_frames=3)
    vis[0, 1:] = False  # never visible after the query
    m = tapvid_metrics(gt, vis, gt.copy(), vis.copy(), [0], (256, 256))
    assert math.isnan(m["pts_within_1"])
    assert math.isnan(m["average_pts_within_thresh"])
    assert m["occlusion_accuracy"] == 1.0
    # Nothing visible, nothing predicted visible: Jaccard 0 / 0.
    assert math.isnan(m["average_jaccard"])


def test_average_over_videos_skips_nan() -> None:
    a = dict.fromkeys(metric_names(), 1.0)
    b = dict.fromkeys(metric_names(), 0.5)
    c = dict.fromkeys(metric_names(), math.nan)
    avg = average_metrics([a, b, c])
    assert avg["average_jaccard"] == pytest.approx(0.75)
    assert math.isnan(average_metrics([c])["occlusion_accuracy"])
    with pytest.raises(ValueError, match="at least one"):
        average_metrics([])
    with pytest.raises(ValueError, match="video 1 have no 'jaccard_4'"):
        average_metrics([a, {k: v for k, v in b.items() if k != "jaccard_4"}])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(pred_xy=a["pred_xy"][:, :2]), r"pred_xy has shape \(2, 2, 2\)"),
        (lambda a: a.update(gt_xy=a["gt_xy"][..., :1]), r"gt_xy must have shape \[P, T, 2\]"),
        (lambda a: a.update(gt_visible=a["gt_visible"].astype(int)), "gt_visible must be boolean"),
        (lambda a: a.update(query_frames=[0, 3]), r"query_frames\[1\] = 3 is outside the 3"),
        (lambda a: a.update(query_frames=[0]), r"query_frames must have shape \(2,\)"),
        (lambda a: a.update(image_size=(256, 0)), "image_size must be two positive integers"),
        (
            lambda a: a["pred_xy"].__setitem__((1, 2, 0), np.nan),
            "pred_xy is not finite at point 1, frame 2",
        ),
        (lambda a: a.update(query_mode="last"), "query_mode must be one of"),
    ],
)
def test_bad_input_is_named(change, message) -> None:  # type: ignore[no-untyped-def]
    gt, vis = _track(num_points=2, num_frames=3)
    args = {
        "gt_xy": gt,
        "gt_visible": vis,
        "pred_xy": gt.copy(),
        "pred_visible": vis.copy(),
        "query_frames": [0, 0],
        "image_size": (256, 256),
    }
    change(args)
    with pytest.raises(ValueError, match=message):
        tapvid_metrics(**args)


def test_never_visible_point_needs_explicit_query() -> None:
    gt, vis = _track(num_points=2, num_frames=3)
    vis[1] = False
    with pytest.raises(ValueError, match=r"points \[1\] are never visible"):
        tapvid_metrics(gt, vis, gt.copy(), vis.copy(), None, (256, 256))


def test_invariant_to_point_order_and_to_resolution() -> None:
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 256, (6, 8, 2))
    vis = rng.uniform(size=(6, 8)) > 0.2
    pred = gt + rng.normal(0, 4, gt.shape)
    pred_vis = rng.uniform(size=(6, 8)) > 0.2
    queries = rng.integers(0, 4, 6)
    base = tapvid_metrics(gt, vis, pred, pred_vis, queries, (256, 256))
    assert all(0.0 <= v <= 1.0 for v in base.values())
    perm = rng.permutation(6)
    shuffled = tapvid_metrics(
        gt[perm], vis[perm], pred[perm], pred_vis[perm], queries[perm], (256, 256)
    )
    assert shuffled == pytest.approx(base)
    # The same video at 480x640: pixel positions scale, the metrics do not.
    scale = np.array([640 / 256, 480 / 256])
    big = tapvid_metrics(gt * scale, vis, pred * scale, pred_vis, queries, (480, 640))
    assert big == pytest.approx(base)
