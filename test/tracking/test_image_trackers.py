"""The image trackers (``hybrid``, ``klt``) on real frames under known motion."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.factory import create_tracker
from rvm_ros.tracking.hybrid import HybridTracker
from rvm_ros.tracking.lucas_kanade import LucasKanade

SIZE = 128
UP = 4  # the base image is rendered UP x larger; shifts are multiples of 1 / UP pixel
MARGIN = 48  # pixels of content around the view, in each direction


@pytest.fixture(scope="module")
def base(sample_video: Path) -> np.ndarray:
    """A real frame, UP x the tracked size plus a margin (uint8 RGB)."""
    cap = cv2.VideoCapture(str(sample_video))
    for _ in range(30):
        ok, bgr = cap.read()
        assert ok
    cap.release()
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    side = (SIZE + 2 * MARGIN) * UP
    return cv2.resize(rgb[:, 100 : 100 + rgb.shape[0]], (side, side), interpolation=cv2.INTER_CUBIC)


def view(base: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The SIZE x SIZE view whose content is shifted by (dx, dy) pixels (exact at 1/UP).

    Rendering from the UP x larger image with an area filter makes a shift of k / UP
    pixels exact: every output pixel averages the same source pixels, moved by k.
    """
    ox = round((MARGIN - dx) * UP)
    oy = round((MARGIN - dy) * UP)
    crop = base[oy : oy + SIZE * UP, ox : ox + SIZE * UP]
    return cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def corners(frame: np.ndarray, n: int = 24) -> np.ndarray:
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    c = cv2.goodFeaturesToTrack(grey, n, 0.01, 8, mask=None)
    pts = c.reshape(-1, 2) + 0.5
    keep = (pts.min(axis=1) > 16) & (pts.max(axis=1) < SIZE - 16)
    return pts[keep].astype(np.float32)


IMAGE_ONLY = TrackerConfig(feature_weight=0.0)  # most tests give the trackers images only


def make(method: str) -> object:
    return create_tracker(replace(IMAGE_ONLY, method=method))


@pytest.mark.parametrize("method", ["hybrid", "klt"])
@pytest.mark.parametrize(
    "shift",
    [(3.0, 0.0), (0.0, -2.0), (5.0, 4.0), (0.25, 0.0), (1.5, -0.75), (-2.25, 1.25), (0.5, 3.75)],
)
def test_integer_and_sub_pixel_translations_within_a_quarter_pixel(
    base: np.ndarray, method: str, shift: tuple[float, float]
) -> None:
    f0 = view(base, 0.0, 0.0)
    f1 = view(base, *shift)
    q = corners(f0)
    assert q.shape[0] >= 8
    tracker = make(method)
    tracker.add_queries(q, np.arange(q.shape[0]))
    s0 = tracker.update(f0)
    np.testing.assert_allclose(s0.xy, q, atol=1e-5)  # reported at the query on its frame
    s1 = tracker.update(f1)
    assert s1.visible.all()
    err = np.linalg.norm(s1.xy - (q + np.array(shift, np.float32)), axis=1)
    assert err.max() < 0.25, err


@pytest.mark.parametrize("method", ["hybrid", "klt"])
def test_points_that_leave_the_view_are_not_visible(base: np.ndarray, method: str) -> None:
    frames = [view(base, 3.0 * t, 0.0) for t in range(14)]  # 3 px / frame to the right
    q = corners(frames[0], 40)
    tracker = make(method)
    tracker.add_queries(q, np.arange(q.shape[0]))
    reported_outside_visible = 0
    for t, frame in enumerate(frames):
        state = tracker.update(frame)
        truth = q + np.array([3.0 * t, 0.0], np.float32)
        gone = truth[:, 0] >= SIZE
        reported_outside_visible += int((state.visible & gone).sum())
        # a visible point is where it should be (less precisely at the border)
        if state.visible.any():
            err = np.linalg.norm(state.xy[state.visible] - truth[state.visible], axis=1)
            assert np.median(err) < 0.25 and err.max() < 2.0
    assert reported_outside_visible == 0
    assert not state.visible[truth[:, 0] >= SIZE].any()
    assert (truth[:, 0] >= SIZE).sum() >= 5  # the test did move points out


def test_hybrid_hides_an_occluded_point_and_finds_it_again(base: np.ndarray) -> None:
    """An occluder from another image covers a point for 4 frames while the camera pans;
    the hybrid tracker reports it not visible meanwhile and finds it again afterwards."""
    occluder = np.ascontiguousarray(base[::-1, ::-1][: 30 * UP : UP, : 30 * UP : UP])  # 30x30
    frames, truth = [], []
    q = corners(view(base, 0.0, 0.0), 40)
    target = int(np.argmin(np.abs(q - SIZE / 2).sum(axis=1)))  # the point nearest the centre
    for t in range(12):
        shift = np.array([1.5 * t, 0.5 * t], np.float32)
        f = view(base, *shift).copy()
        p = q[target] + shift
        if 3 <= t < 7:
            x0, y0 = int(p[0]) - 15, int(p[1]) - 15
            f[y0 : y0 + 30, x0 : x0 + 30] = occluder
        frames.append(f)
        truth.append(q + shift)
    tracker = HybridTracker(IMAGE_ONLY)
    tracker.add_queries(q, np.arange(q.shape[0]))
    seen = []
    for t, f in enumerate(frames):
        state = tracker.update(f)
        seen.append(bool(state.visible[target]))
        if state.visible[target]:
            assert np.linalg.norm(state.xy[target] - truth[t][target]) < 1.0, t
    assert seen[:3] == [True] * 3
    assert not any(seen[3:7])
    assert all(seen[8:])
    # the other points kept their accuracy through it
    final = tracker.update(frames[-1])
    err = np.linalg.norm(final.xy - truth[-1], axis=1)[final.visible]
    assert final.visible.mean() > 0.8 and np.median(err) < 0.25


def test_klt_loses_an_occluded_point_for_good(base: np.ndarray) -> None:
    q = corners(view(base, 0.0, 0.0), 12)
    tracker = create_tracker(TrackerConfig(method="klt"))
    tracker.add_queries(q[:1], np.array([7]))
    tracker.update(view(base, 0.0, 0.0))
    grey = view(base, 1.0, 0.0).copy()
    grey[:, :] = 128  # everything gone
    assert not tracker.update(grey).visible[0]
    assert not tracker.update(view(base, 2.0, 0.0)).visible[0]  # stays lost


@pytest.mark.parametrize("method", ["hybrid", "klt", "propagation"])
def test_point_management(method: str) -> None:
    tracker = make(method)
    tracker.add_queries(np.array([[10.0, 10.0], [20.0, 30.0]]), np.array([5, 2]))
    with pytest.raises(ValueError, match="already tracked"):
        tracker.add_queries(np.array([[1.0, 1.0]]), np.array([5]))
    with pytest.raises(ValueError, match="duplicate ids"):
        tracker.add_queries(np.array([[1.0, 1.0], [2.0, 2.0]]), np.array([9, 9]))
    with pytest.raises(ValueError, match="outside"):
        tracker.add_queries(np.array([[-1.0, 1.0]]), np.array([9]))
    with pytest.raises(ValueError, match="not tracked"):
        tracker.remove([11])
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    feats = np.random.default_rng(1).normal(size=(4, 4, 8)).astype(np.float32)
    state = tracker.update(frame, feats)
    assert state.ids.tolist() == [2, 5]
    np.testing.assert_allclose(state.xy, [[20.0, 30.0], [10.0, 10.0]], atol=1e-4)
    assert state.visible.all()
    tracker.remove([5])
    assert tracker.ids.tolist() == [2] and len(tracker) == 1
    tracker.clear()
    assert len(tracker) == 0


@pytest.mark.parametrize("method", ["hybrid", "klt"])
def test_bad_images_are_refused_and_a_size_change_needs_a_reset(method: str) -> None:
    tracker = make(method)
    with pytest.raises(ValueError, match="uint8"):
        tracker.update(np.zeros((32, 32, 3), np.float32))
    tracker.update(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="reset"):
        tracker.update(np.zeros((48, 32), np.uint8))
    tracker.reset()
    tracker.update(np.zeros((48, 32), np.uint8))


def test_hybrid_keeps_points_and_appearance_across_a_reset(base: np.ndarray) -> None:
    q = corners(view(base, 0.0, 0.0), 20)
    tracker = HybridTracker(IMAGE_ONLY)
    tracker.add_queries(q, np.arange(q.shape[0]))
    tracker.update(view(base, 0.0, 0.0))
    tracker.reset()
    state = tracker.update(view(base, 2.0, -1.0))  # searched around the last estimates
    truth = q + np.array([2.0, -1.0], np.float32)
    assert state.visible.mean() > 0.8
    assert np.median(np.linalg.norm(state.xy - truth, axis=1)[state.visible]) < 0.5


@pytest.mark.parametrize("shift", [(14.0, -9.0), (-22.0, 17.0)])
def test_hybrid_tracks_across_a_reset_with_a_large_jump(
    base: np.ndarray, shift: tuple[float, float]
) -> None:
    """A reset (the node's reaction to a gap in the stream) with frames of the same size:
    the points are tracked from the last frame across the jump, not lost."""
    q = corners(view(base, 0.0, 0.0), 20)
    tracker = HybridTracker(IMAGE_ONLY)
    tracker.add_queries(q, np.arange(q.shape[0]))
    tracker.update(view(base, 0.0, 0.0))
    tracker.update(view(base, 1.0, 0.0))
    tracker.reset()
    state = tracker.update(view(base, *shift))
    truth = q + np.array(shift, np.float32)
    inside = (truth.min(axis=1) > 8) & (truth.max(axis=1) < SIZE - 8)
    assert inside.sum() >= 8
    err = np.linalg.norm(state.xy - truth, axis=1)
    assert state.visible[inside].mean() > 0.8
    assert np.median(err[inside & state.visible]) < 0.5


def test_the_frame_after_a_reset_reaches_one_pyramid_level_further(base: np.ndarray) -> None:
    """A jump beyond the reach of the configured pyramid is followed on the frame after a
    reset (the node resets on a stream gap), whose Lucas-Kanade step takes one level more;
    the template search is off, so the reach is Lucas-Kanade's (and the motion fitted to
    the points it brings over)."""
    shift = (28.0, -10.0)
    q = corners(view(base, 0.0, 0.0), 20)
    truth = q + np.array(shift, np.float32)
    inside = (truth.min(axis=1) > 8) & (truth.max(axis=1) < SIZE - 8)
    assert inside.sum() >= 8
    config = replace(IMAGE_ONLY, lk_levels=0, search_radius=0.0)
    tracker = HybridTracker(config)
    tracker.add_queries(q, np.arange(q.shape[0]))
    tracker.update(view(base, 0.0, 0.0))
    tracker.update(view(base, *shift))  # no reset: out of reach, the points are lost
    assert tracker.update(view(base, *shift)).visible[inside].mean() < 0.2
    tracker = HybridTracker(config)
    tracker.add_queries(q, np.arange(q.shape[0]))
    tracker.update(view(base, 0.0, 0.0))
    tracker.reset()
    state = tracker.update(view(base, *shift))
    err = np.linalg.norm(state.xy - truth, axis=1)
    assert state.visible[inside].mean() > 0.8
    assert np.median(err[inside & state.visible]) < 0.5


def test_hybrid_relocalises_through_the_features_when_motion_is_unknown(base: np.ndarray) -> None:
    """After a reset to a new frame size nothing can be tracked from the last frame; with
    ``feature_relocalise`` the points are found again through their feature vectors
    (here features that move with the content: one random vector per source cell)."""
    rng = np.random.default_rng(0)
    cells = rng.normal(size=(40, 40, 16)).astype(np.float32)  # content-fixed features

    def feats(dx: int, dy: int, size: int) -> np.ndarray:  # 8-pixel cells, shift in cells
        n = size // 8
        return cells[8 - dy : 8 - dy + n, 8 - dx : 8 - dx + n]

    def image(dx: float, dy: float, size: int) -> np.ndarray:
        return view(base, dx, dy)[:size, :size]

    def run(relocalise: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = corners(view(base, 0.0, 0.0), 80)
        moved = q + np.array([-24.0, 16.0], np.float32)
        q = q[(moved.min(axis=1) > 12) & (moved.max(axis=1) < 96 - 12)]
        tracker = HybridTracker(replace(IMAGE_ONLY, feature_relocalise=relocalise))
        assert tracker.needs_features == relocalise
        tracker.add_queries(q, np.arange(q.shape[0]))
        tracker.update(image(0, 0, SIZE), feats(0, 0, SIZE) if relocalise else None)
        tracker.reset()
        # a smaller frame: 96x96, the content moved by (-24, +16) px = (-3, +2) cells
        state = tracker.update(image(-24, 16, 96), feats(-3, 2, 96) if relocalise else None)
        return state.xy, state.visible, q + np.array([-24.0, 16.0], np.float32)

    xy, visible, truth = run(True)
    inside = (truth.min(axis=1) > 8) & (truth.max(axis=1) < 96 - 8)
    assert inside.sum() >= 6
    assert visible[inside].mean() > 0.8
    assert np.median(np.linalg.norm(xy - truth, axis=1)[inside & visible]) < 0.5
    _, visible0, _ = run(False)  # without: searched around the old positions, not found
    assert visible0[inside].mean() < 0.3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "sift"}, "method must be one of"),
        ({"lk_window": 20}, "lk_window must be an odd integer"),
        ({"lk_window": 3}, "lk_window must be an odd integer"),
        ({"lk_levels": 7}, "lk_levels must be an integer in"),
        ({"fb_threshold": 0.0}, "fb_threshold must be a finite number > 0"),
        ({"template_radius": 1}, "template_radius must be an integer in"),
        ({"search_radius": -1.0}, "search_radius must be in"),
        ({"feature_weight": 1.5}, "feature_weight must be in"),
        ({"feature_weight": True}, "feature_weight must be in"),
        ({"feature_relocalise": 1}, "feature_relocalise must be true or false"),
        ({"max_side": 32}, "max_side must be 0 or an integer"),
        ({"max_side": 640.0}, "max_side must be 0 or an integer"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrackerConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("weight", "visible"), [(0.35, True), (0.6, False)])
def test_hybrid_confidence_drops_when_the_features_at_a_point_change(
    base: np.ndarray, weight: float, visible: bool
) -> None:
    """Same image, but the features where the points are no longer match the query's: the
    confidence loses the feature share (``feature_weight``); with a large share the points
    are judged not visible (drifted onto something else)."""
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(16, 16, 256)).astype(np.float32)  # 8-pixel cells of 128x128
    q = corners(view(base, 0.0, 0.0), 12)
    tracker = HybridTracker(replace(IMAGE_ONLY, feature_weight=weight))
    assert tracker.needs_features
    tracker.add_queries(q, np.arange(q.shape[0]))
    tracker.update(view(base, 0.0, 0.0), feats)
    same = tracker.update(view(base, 0.0, 0.0), feats)
    assert same.visible.all() and (same.confidence > 0.95).all()
    changed = feats.copy()
    cells = np.floor(q / 8).astype(int)
    for dy in (-2, -1, 0, 1, 2):  # the cells the features are read from (and searched in)
        for dx in (-2, -1, 0, 1, 2):
            r, c = np.clip(cells[:, 1] + dy, 0, 15), np.clip(cells[:, 0] + dx, 0, 15)
            changed[r, c] = rng.normal(size=(q.shape[0], 256))  # [P, C] new content
    state = tracker.update(view(base, 0.0, 0.0), changed)
    assert np.median(same.confidence - state.confidence) > 0.5 * weight
    assert state.visible.mean() == (1.0 if visible else 0.0)


def test_hybrid_with_feature_weight_needs_features() -> None:
    tracker = create_tracker(TrackerConfig(feature_weight=0.5))
    assert tracker.needs_features
    with pytest.raises(ValueError, match="needs the RVM features"):
        tracker.update(np.zeros((32, 32), np.uint8))
    feats = np.ones((2, 2, 4), np.float32)
    tracker.add_queries(np.array([[8.0, 8.0]]), np.array([0]))
    assert tracker.update(np.zeros((32, 32), np.uint8), feats).ids.tolist() == [0]


def _two_motions(base: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t``: the background pans right 1 px / frame, a 48x48 patch cut from another
    part of the image moves left 8 px / frame over it (9 px / frame against the
    background: beyond the template search radius). Returns the frame and the patch's
    top-left corner."""
    frame = view(base, 1.0 * t, 0.0).copy()
    patch = np.ascontiguousarray(base[::-1, ::-1][: 48 * UP : UP, : 48 * UP : UP])  # 48x48
    x0, y0 = 76 - 8 * t, 8  # whole pixels: an exact motion
    frame[y0 : y0 + 48, x0 : x0 + 48] = patch
    return frame, np.array([x0, y0], np.float32)


@pytest.mark.parametrize("gate", ["score", "global"])
def test_hybrid_follows_an_object_that_moves_on_its_own(
    base: np.ndarray, gate: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Points on an object moving against the background's motion are tracked with it
    (``score``, the default); rejecting steps off the background's homography (``global``,
    the design before issue 21) loses them, so this test can fail."""
    import rvm_ros.tracking.hybrid as hybrid

    monkeypatch.setattr(hybrid, "_GATE_MODE", gate)
    f0, c0 = _two_motions(base, 0)
    grey = cv2.cvtColor(f0, cv2.COLOR_RGB2GRAY)
    mask = np.zeros_like(grey)
    mask[int(c0[1]) + 12 : int(c0[1]) + 36, int(c0[0]) + 12 : int(c0[0]) + 36] = 255
    on_obj = cv2.goodFeaturesToTrack(grey, 8, 0.01, 5, mask=mask).reshape(-1, 2) + 0.5
    g = cv2.cvtColor(view(base, 0.0, 0.0), cv2.COLOR_RGB2GRAY)
    c = cv2.goodFeaturesToTrack(g, 200, 0.001, 6).reshape(-1, 2) + 0.5  # background corners
    keep = (c.min(axis=1) > 12) & (c.max(axis=1) < SIZE - 20)
    keep &= c[:, 1] > 72  # away from the patch's path
    bg = c[keep][:24]
    assert bg.shape[0] > 2 * 8  # the background holds most points
    q = np.concatenate([on_obj, bg]).astype(np.float32)
    n_obj = on_obj.shape[0]
    tracker = HybridTracker(IMAGE_ONLY)
    tracker.add_queries(q, np.arange(q.shape[0]))
    tracker.update(f0)
    for t in range(1, 6):
        frame, c = _two_motions(base, t)
        state = tracker.update(frame)
    truth_obj = q[:n_obj] + (c - c0)
    err_obj = np.linalg.norm(state.xy[:n_obj] - truth_obj, axis=1)
    followed = state.visible[:n_obj] & (err_obj < 2.5)  # lost: tens of pixels off or hidden
    if gate == "score":
        assert followed.mean() >= 0.75, (state.visible[:n_obj], err_obj)
        truth_bg = q[n_obj:] + np.array([5.0, 0.0], np.float32)
        err_bg = np.linalg.norm(state.xy[n_obj:] - truth_bg, axis=1)
        seen = state.visible[n_obj:]
        assert seen.sum() >= 8 and np.median(err_bg[seen]) < 0.25
    else:
        assert followed.mean() < 0.5


@pytest.mark.parametrize("method", ["hybrid", "klt"])
def test_max_side_downscales_but_positions_stay_in_image_pixels(
    base: np.ndarray, method: str
) -> None:
    """With ``max_side`` half the image side the trackers work at half resolution; queries
    and positions stay in pixels of the image handed in (within a quarter pixel of the
    tracking image, i.e. half an image pixel)."""
    f0, f1 = view(base, 0.0, 0.0), view(base, 3.0, -2.0)
    q = corners(f0)
    tracker = create_tracker(replace(IMAGE_ONLY, method=method, max_side=64))
    tracker.add_queries(q, np.arange(q.shape[0]))
    s0 = tracker.update(f0)
    np.testing.assert_allclose(s0.xy, q, atol=1e-4)
    s1 = tracker.update(f1)
    err = np.linalg.norm(s1.xy - (q + np.array([3.0, -2.0], np.float32)), axis=1)
    assert s1.visible.mean() > 0.8 and np.median(err[s1.visible]) < 0.5, err


@pytest.mark.parametrize("shift", [(3.0, -2.0), (14.0, -9.0)])
def test_lucas_kanade_levels_per_call(base: np.ndarray, shift: tuple[float, float]) -> None:
    """``levels`` overrides the pyramid of one call; the default is the tracker's."""
    q = corners(view(base, 0.0, 0.0), 20)
    truth = q + np.array(shift, np.float32)
    grey0, grey1 = (cv2.cvtColor(view(base, *d), cv2.COLOR_RGB2GRAY) for d in ((0, 0), shift))
    lk = LucasKanade(9, 0)
    hits = {}
    for levels in (None, 0, 2):
        new, ok, _ = lk.track(grey0, grey1, q, levels=levels)
        hits[levels] = float((ok & (np.linalg.norm(new - truth, axis=1) < 0.5)).mean())
    assert hits[None] == hits[0]
    assert hits[2] > 0.8
    if max(map(abs, shift)) > 9:  # beyond a 9-pixel window without a pyramid
        assert hits[0] < 0.5
    assert lk.levels == 0
