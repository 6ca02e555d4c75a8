"""Label-propagation point tracker: synthetic feature videos with known motion, and real
RVM features on a real video with a known synthetic translation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.label_propagation import PointTracker, TrackState

H = W = 16
C = 32


class Scene:
    """A static random background with distinctive feature vectors pasted on cells."""

    def __init__(self, seed: int = 0, noise: float = 0.1) -> None:
        self.rng = np.random.default_rng(seed)
        self.background = self.rng.standard_normal((H, W, C)).astype(np.float32)
        self.noise = noise

    def feature(self) -> np.ndarray:
        return self.rng.standard_normal(C).astype(np.float32)

    def frame(self, *objects: tuple[np.ndarray, int, int]) -> np.ndarray:
        """Background plus sensor noise, with ``feature`` pasted at cell ``(row, col)``."""
        f = self.background + self.noise * self.rng.standard_normal((H, W, C)).astype(np.float32)
        for feature, row, col in objects:
            f[row, col] = feature
        return f


def centre(row: int, col: int) -> np.ndarray:
    return np.array([col + 0.5, row + 0.5], dtype=np.float32)


def test_follows_features_with_known_motion() -> None:
    scene = Scene(seed=1)
    a, b = scene.feature(), scene.feature()
    tracker = PointTracker()
    tracker.add_queries(np.array([centre(2, 1), centre(13, 14)]), np.array([10, 20]))
    for t in range(12):
        pos_a = (2 + t // 2, 1 + t)  # right 1 cell per frame, down every other frame
        pos_b = (13 - t // 3, 14 - t)  # left 1 cell per frame, up every third frame
        state = tracker.update(scene.frame((a, *pos_a), (b, *pos_b)))
        assert state.ids.tolist() == [10, 20]
        expected = np.stack([centre(*pos_a), centre(*pos_b)])
        err = np.abs(state.xy - expected).max(axis=1)
        assert (err < 0.5).all(), f"frame {t}: tracked {state.xy.tolist()}, truth {expected}"
        assert state.visible.all(), f"frame {t}: confidence {state.confidence}"
        assert (state.confidence > 0.9).all()
    assert state.xy.dtype == np.float32 and state.confidence.dtype == np.float32
    assert state.ids.dtype == np.int32 and state.visible.dtype == np.bool_


def test_query_frame_reports_query_position() -> None:
    scene = Scene()
    tracker = PointTracker()
    tracker.add_queries(np.array([[3.2, 7.9]]), np.array([5]))
    assert len(tracker) == 1
    assert tracker.state().ids.tolist() == []  # pending until the next frame
    state = tracker.update(scene.frame())
    np.testing.assert_array_equal(state.xy, np.array([[3.2, 7.9]], dtype=np.float32))
    assert state.confidence.tolist() == [1.0]
    assert state.visible.tolist() == [True]


def test_disappearing_feature_is_not_visible_and_keeps_last_position() -> None:
    scene = Scene(seed=2)
    a = scene.feature()
    tracker = PointTracker()
    tracker.add_queries(centre(5, 2)[None], np.array([0]))
    for t in range(6):
        state = tracker.update(scene.frame((a, 5, 2 + t)))
        assert state.visible[0]
    last = centre(5, 7)
    np.testing.assert_allclose(state.xy[0], last, atol=0.5)
    held = state.xy[0].copy()
    for _ in range(3):  # the feature is gone: only background
        state = tracker.update(scene.frame())
        assert not state.visible[0], f"confidence {state.confidence[0]}"
        assert state.confidence[0] < TrackerConfig().visibility_threshold
        np.testing.assert_array_equal(state.xy[0], held)
    # It comes back further on: the query frame in the context finds it again.
    state = tracker.update(scene.frame((a, 5, 11)))
    assert state.visible[0]
    np.testing.assert_allclose(state.xy[0], centre(5, 11), atol=0.5)


def _distractor_run(radius: float) -> TrackState:
    """Query on frame 0 at (8, 3); on frame 1 the point moved to (8, 4) but looks a bit
    different, while an exact copy of its old appearance shows up at (8, 12)."""
    scene = Scene(seed=3, noise=0.05)
    a = scene.feature()
    changed = a + 0.6 * np.linalg.norm(a) / math.sqrt(C) * scene.feature()
    tracker = PointTracker(TrackerConfig(radius=radius))
    tracker.add_queries(centre(8, 3)[None], np.array([1]))
    tracker.update(scene.frame((a, 8, 3)))
    return tracker.update(scene.frame((changed, 8, 4), (a, 8, 12)))


def test_radius_restriction_is_applied() -> None:
    # Distractor 9 cells away, outside a radius of 3: ignored, the point is followed.
    near = _distractor_run(radius=3.0)
    np.testing.assert_allclose(near.xy[0], centre(8, 4), atol=0.5)
    # Unrestricted (0 or inf), or a radius that reaches it: the exact copy wins.
    for radius in (0.0, math.inf, 10.0):
        far = _distractor_run(radius=radius)
        np.testing.assert_allclose(far.xy[0], centre(8, 12), atol=0.5, err_msg=f"radius {radius}")
    assert TrackerConfig(radius=0.0).restricted is False
    assert TrackerConfig(radius=math.inf).restricted is False
    assert TrackerConfig(radius=20.0).restricted is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"topk": 0}, r"topk must be an integer ≥ 1, got 0"),
        ({"topk": 2.5}, r"topk must be an integer ≥ 1, got 2.5"),
        ({"topk": True}, r"topk must be an integer ≥ 1, got True"),
        ({"temperature": 0.0}, r"temperature must be a finite number > 0, got 0.0"),
        ({"temperature": -0.7}, r"temperature must be a finite number > 0"),
        ({"temperature": math.nan}, r"temperature must be a finite number > 0, got nan"),
        ({"temperature": math.inf}, r"temperature must be a finite number > 0, got inf"),
        ({"temperature": "0.7"}, r"temperature must be a finite number > 0, got '0.7'"),
        ({"n_context": -1}, r"n_context must be an integer ≥ 0, got -1"),
        ({"radius": -1.0}, r"radius must be ≥ 0 cells"),
        ({"radius": math.nan}, r"radius must be ≥ 0 cells"),
        ({"visibility_threshold": 1.5}, r"visibility_threshold must be in \[0, 1\], got 1.5"),
        ({"label_sigma": 0.0}, r"label_sigma must be a finite number > 0 cells, got 0.0"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrackerConfig(**kwargs)  # type: ignore[arg-type]


def test_defaults_are_the_notebooks() -> None:
    cfg = TrackerConfig()
    assert (cfg.n_context, cfg.temperature, cfg.topk, cfg.radius) == (20, 0.7, 7, 20.0)
    assert 0.0 < cfg.visibility_threshold < 1.0
    assert 0.5 <= cfg.label_sigma <= 1.0


def test_ids_come_out_in_ascending_order_and_keep_their_points() -> None:
    scene = Scene(seed=4)
    feats = {i: scene.feature() for i in (7, 3, 10, 1)}
    cells = {7: (2, 2), 3: (6, 9), 10: (11, 4), 1: (9, 13)}

    def frame(shift: int) -> np.ndarray:
        return scene.frame(*[(feats[i], r + shift, c) for i, (r, c) in cells.items()])

    tracker = PointTracker()
    tracker.add_queries(np.array([centre(*cells[i]) for i in (7, 3, 10)]), np.array([7, 3, 10]))
    state = tracker.update(frame(0))
    assert state.ids.tolist() == [3, 7, 10]
    tracker.add_queries(centre(cells[1][0] + 1, cells[1][1])[None], np.array([1]))
    np.testing.assert_array_equal(tracker.ids, [1, 3, 7, 10])
    state = tracker.update(frame(1))
    assert state.ids.tolist() == [1, 3, 7, 10]
    for shift in (2, 3):
        state = tracker.update(frame(shift))
    for j, i in enumerate(state.ids.tolist()):
        r, c = cells[i]
        np.testing.assert_allclose(state.xy[j], centre(r + 3, c), atol=0.5, err_msg=f"id {i}")
    assert state.visible.all()
    tracker.remove([3])
    state = tracker.update(frame(4))
    assert state.ids.tolist() == [1, 7, 10]
    np.testing.assert_allclose(state.xy[1], centre(2 + 4, 2), atol=0.5)


def test_point_added_later_ignores_frames_before_its_query() -> None:
    scene = Scene(seed=5)
    a, b = scene.feature(), scene.feature()
    tracker = PointTracker()
    tracker.add_queries(centre(3, 3)[None], np.array([0]))
    for t in range(4):
        tracker.update(scene.frame((a, 3, 3 + t)))
    # b appears on frame 4 and is queried there; before, its cell showed background.
    tracker.add_queries(centre(10, 2)[None], np.array([1]))
    for t in range(4, 9):
        state = tracker.update(scene.frame((a, 3, 3 + t), (b, 10, 2 + (t - 4))))
        np.testing.assert_allclose(state.xy, [centre(3, 3 + t), centre(10, 2 + t - 4)], atol=0.5)
        assert state.visible.all()


def test_reset_reanchors_points_at_their_last_position() -> None:
    scene = Scene(seed=6)
    a, b = scene.feature(), scene.feature()
    with_reset, without = PointTracker(), PointTracker()
    for tracker in (with_reset, without):
        tracker.add_queries(centre(4, 4)[None], np.array([0]))
        for t in range(3):
            tracker.update(scene.frame((a, 4, 4 + t)))
    with_reset.reset()
    # After the reset a different feature b sits where the point was last seen, and moves on.
    frames = [scene.frame((b, 4, 6 + t)) for t in range(4)]
    first = with_reset.update(frames[0])
    np.testing.assert_allclose(first.xy[0], centre(4, 6), atol=0.5)
    assert first.confidence[0] == 1.0
    for f in frames[1:]:
        state = with_reset.update(f)
        plain = without.update(f)
    # Re-anchored on b, the reset tracker follows it...
    np.testing.assert_allclose(state.xy[0], centre(4, 9), atol=0.5)
    assert state.visible[0]
    # ...while the tracker that kept its context knows b is not the point.
    assert not plain.visible[0]


def test_reset_keeps_lost_points_lost_and_allows_a_new_grid() -> None:
    scene = Scene(seed=7)
    a = scene.feature()
    tracker = PointTracker()
    tracker.add_queries(np.array([centre(2, 2), centre(9, 9)]), np.array([0, 1]))
    tracker.update(scene.frame((a, 2, 2)))
    state = tracker.update(scene.frame((a, 2, 3)))  # point 1 was on plain background
    state = tracker.update(scene.frame())  # a vanishes: point 0 lost
    assert not state.visible[0]
    with pytest.raises(ValueError, match=r"feature grid 8x8x32 differs .* call reset\(\)"):
        tracker.update(np.ones((8, 8, C), dtype=np.float32))
    tracker.reset()
    small = scene.background[:12, :12]
    state = tracker.update(small.copy())
    assert state.ids.tolist() == [0, 1]
    assert state.confidence[0] == 0.0 and not state.visible[0]
    state = tracker.update(small.copy())
    assert state.confidence[0] == 0.0 and not state.visible[0]
    np.testing.assert_allclose(state.xy[0], centre(2, 3), atol=0.5)  # last visible position
    # Points outside a smaller grid after a reset are named.
    tracker.add_queries(np.array([[11.5, 11.5]]), np.array([2]))
    tracker.reset()
    with pytest.raises(ValueError, match=r"points \[1, 2\] lie outside the 8x8 grid"):
        tracker.update(scene.background[:8, :8].copy())


def test_clear_drops_points_and_ids_can_be_reused() -> None:
    scene = Scene(seed=8)
    tracker = PointTracker()
    tracker.add_queries(np.array([centre(1, 1), centre(2, 2)]), np.array([0, 1]))
    tracker.update(scene.frame())
    tracker.add_queries(centre(3, 3)[None], np.array([2]))  # pending: cleared too
    tracker.clear()
    assert len(tracker) == 0
    state = tracker.update(scene.frame())
    assert len(state) == 0 and state.xy.shape == (0, 2)
    tracker.add_queries(centre(5, 5)[None], np.array([1]))
    assert tracker.update(scene.frame()).ids.tolist() == [1]


def test_point_management_errors() -> None:
    tracker = PointTracker()
    with pytest.raises(ValueError, match=r"xy must have shape \[P, 2\], got \(3,\)"):
        tracker.add_queries(np.zeros(3), np.arange(3))
    with pytest.raises(ValueError, match=r"ids must have shape \(2,\) to match xy"):
        tracker.add_queries(np.zeros((2, 2)), np.arange(3))
    with pytest.raises(ValueError, match=r"duplicate ids \[4\]"):
        tracker.add_queries(np.zeros((2, 2)), np.array([4, 4]))
    with pytest.raises(ValueError, match="ids must be integers"):
        tracker.add_queries(np.zeros((1, 2)), np.array([1.5]))
    with pytest.raises(ValueError, match=r"outside the grid \(id, xy\): \[\(1, \[nan, 1.0\]\)\]"):
        tracker.add_queries(np.array([[0.0, 0.0], [math.nan, 1.0]]), np.array([0, 1]))
    assert len(tracker) == 0  # nothing added by a failed call
    tracker.add_queries(np.array([[1.0, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match=r"ids \[0\] are already tracked"):
        tracker.add_queries(np.array([[2.0, 2.0]]), np.array([0]))
    tracker.update(np.ones((H, W, C), dtype=np.float32))
    with pytest.raises(
        ValueError, match=r"outside the 16x16 grid \(id, xy\): \[\(5, \[16.5, 3.0\]\)\]"
    ):
        tracker.add_queries(np.array([[16.5, 3.0]]), np.array([5]))
    with pytest.raises(ValueError, match=r"ids \[99\] are not tracked"):
        tracker.remove([0, 99])
    assert tracker.ids.tolist() == [0]  # nothing removed by a failed call


def test_update_rejects_bad_features_without_changing_state() -> None:
    scene = Scene(seed=9)
    a = scene.feature()
    first, second = scene.frame((a, 4, 4)), scene.frame((a, 4, 5))
    tracker, twin = PointTracker(), PointTracker()
    for t in (tracker, twin):
        t.add_queries(centre(4, 4)[None], np.array([0]))
        t.update(first)
    bad = second.copy()
    bad[3, 7, 2] = np.nan
    with pytest.raises(ValueError, match=r"not finite in 1 cells \(first: row 3, column 7\)"):
        tracker.update(bad)
    with pytest.raises(ValueError, match=r"shape \[h, w, C\], got \(16, 16\)"):
        tracker.update(np.zeros((H, W), dtype=np.float32))
    with pytest.raises(ValueError, match="floating point, got dtype uint8"):
        tracker.update(np.zeros((H, W, C), dtype=np.uint8))
    # The failed calls left the tracker as it was: it continues exactly like its twin.
    s1, s2 = tracker.update(second), twin.update(second)
    np.testing.assert_array_equal(s1.xy, s2.xy)
    np.testing.assert_array_equal(s1.confidence, s2.confidence)
    np.testing.assert_allclose(s1.xy[0], centre(4, 5), atol=0.5)


def test_deterministic_and_context_bounded() -> None:
    scene = Scene(seed=10)
    a = scene.feature()
    frames = [scene.frame((a, 7, t % W)) for t in range(30)]
    runs = []
    for _ in range(2):
        tracker = PointTracker(TrackerConfig(n_context=3))
        tracker.add_queries(centre(7, 0)[None], np.array([0]))
        runs.append([tracker.update(f) for f in frames])
        assert tracker.context_indices == [27, 28, 29]  # the n_context most recent frames
    for s1, s2 in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(s1.xy, s2.xy)
        np.testing.assert_array_equal(s1.confidence, s2.confidence)


class DenseReference:
    """Label propagation written out densely, independent of the tracker's ring buffer:
    the context of a group on frame t is its anchor frame plus the frames after it among
    the last ``n_context`` ones, in time order; the top-k is a stable sort (ties go to the
    earlier frame, then the lower cell)."""

    def __init__(self, cfg: TrackerConfig, h: int, w: int) -> None:
        self.cfg = cfg
        rows, cols = np.divmod(np.arange(h * w), w)
        d2 = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2
        far = cfg.restricted and d2 > cfg.radius**2
        self.reach = np.where(far, -np.inf, 0.0)
        self.frames: list[np.ndarray] = []  # normalised [N, C] per frame index
        self.labels: dict[int, dict[int, np.ndarray]] = {}  # id -> frame -> [N]

    def weights(self, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = min(self.cfg.topk, sims.shape[1])
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        s = np.take_along_axis(sims, top, axis=1)
        wts = np.exp((s - s[:, :1]) / self.cfg.temperature)
        return top, wts / wts.sum(axis=1, keepdims=True)

    def propagate(
        self, t: int, anchor: int, ids: list[int], cells: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        ctx = [anchor] + [f for f in range(max(anchor + 1, t - self.cfg.n_context), t)]
        n = self.frames[t].shape[0]
        feats = np.concatenate([self.frames[f] for f in ctx]).astype(np.float64)  # [K*N, C]
        labels = np.stack([np.concatenate([self.labels[i][f] for f in ctx]) for i in ids], 1)
        reach = np.tile(self.reach, (1, len(ctx)))  # [N, K*N]
        top, wts = self.weights(self.frames[t].astype(np.float64) @ feats.T + reach)
        heat = np.einsum("nk,nkp->np", wts, labels[top])  # [N, P]
        query = self.frames[anchor][cells].astype(np.float64)  # [P, C]
        top_r, wts_r = self.weights(query @ feats.T + reach[cells])
        reference = (wts_r * labels[top_r, np.arange(len(ids))[:, None]]).sum(axis=1)
        assert heat.shape == (n, len(ids))
        return heat, reference


@pytest.mark.parametrize("n_context", [3, 6])
def test_matches_dense_label_propagation(n_context: int) -> None:
    """Heatmaps and references equal a dense re-implementation over several groups, a
    context ring that grows (6: 4 then 6 slots) and wraps, a restricting radius and a
    removal. (Sensor noise everywhere:
    exactly equal similarities would make the comparison hinge on last-bit rounding.)"""
    scene = Scene(seed=12, noise=0.5)
    objs = [scene.feature() for _ in range(3)]
    cfg = TrackerConfig(n_context=n_context, radius=6.0)
    tracker = PointTracker(cfg)
    ref = DenseReference(cfg, H, W)
    spied: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
    propagate = tracker._propagate_all

    def spy(flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = propagate(flat)
        spied.append(out)
        return out

    tracker._propagate_all = spy  # type: ignore[method-assign]
    queries = {0: [(2, 3), (9, 9), (14, 1)], 2: [(5, 5), (12, 13)]}
    next_id = 0
    for t in range(12):
        if t in queries:
            xy = np.array([centre(*rc) for rc in queries[t]])
            tracker.add_queries(xy, np.arange(next_id, next_id + len(xy)))
            next_id += len(xy)
        if t == 6:
            tracker.remove([1])
        f = scene.frame(*[(o, (3 * j + t) % H, (5 * j + 2 * t) % W) for j, o in enumerate(objs)])
        flat = f.reshape(H * W, C) / np.linalg.norm(f.reshape(H * W, C), axis=1, keepdims=True)
        ref.frames.append(flat.astype(np.float32))
        spied.clear()
        tracker.update(f)
        groups = [g for g in tracker._groups if g.anchor_index < t]
        assert len(spied) == (1 if groups else 0)
        for g, (heat, reference, _) in zip(groups, spied[0] if spied else [], strict=True):
            ids = g.ids.tolist()
            want_heat, want_ref = ref.propagate(t, g.anchor_index, ids, g.anchor_cells)
            np.testing.assert_allclose(heat, want_heat, rtol=1e-4, atol=1e-5, err_msg=f"t={t}")
            np.testing.assert_allclose(reference, want_ref, rtol=1e-4, atol=1e-6)
            for j, i in enumerate(ids):
                ref.labels[i][t] = heat[:, j]  # carry the tracker's own labels forward
        for g in tracker._groups:
            if g.anchor_index == t:
                for j, i in enumerate(g.ids.tolist()):
                    ref.labels[i] = {t: g.anchor_labels[:, j].copy()}
    assert tracker.ids.tolist() == [0, 2, 3, 4]


# --------------------------------------------------------------------- real features


def _bikes_first_frame() -> np.ndarray:
    import cv2

    from rvm_ros.imaging.video import find_sample_video

    path = find_sample_video("bikes.mp4")  # a missing sample video fails, like fixtures
    cap = cv2.VideoCapture(str(path))
    ok, bgr = cap.read()
    cap.release()
    assert ok, f"could not decode {path}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


_STEP, _FRAMES, _SIZE = 4, 9, 128  # px per frame, frames, window side
_G = _SIZE // 16  # grid cells per side
_QUERIES = np.array(
    [[x + 0.5, y + 0.5] for y in range(2, _G - 1) for x in range(3, _G)], dtype=np.float32
)
_EXPECTED_DX = -_STEP * (_FRAMES - 1) / 16  # -2 cells


def _translated_frames() -> np.ndarray:
    """A real frame (bikes.mp4), resized to 256x256; 128x128 windows slide 4 px right per
    frame, so the content moves 4 px = 1/4 cell left per frame: 2 cells over 9 frames."""
    import cv2

    big = cv2.resize(_bikes_first_frame(), (256, 256), interpolation=cv2.INTER_AREA)
    return np.stack(
        [big[32 : 32 + _SIZE, 16 + _STEP * t : 16 + _STEP * t + _SIZE] for t in range(_FRAMES)]
    )


def _track(grids: list[np.ndarray]) -> TrackState:
    tracker = PointTracker()
    tracker.add_queries(_QUERIES, np.arange(len(_QUERIES)))
    for grid in grids:
        state = tracker.update(grid)
    return state


def test_pixel_patches_of_a_translated_real_frame_recover_the_shift() -> None:
    """Raw 16x16 pixel patches (mean-subtracted per patch) as features: the tracker must
    recover the true motion (2 cells left, none vertical) for most points."""
    frames, g = _translated_frames(), _G
    pixels = [
        (
            p := f.astype(np.float32)
            .reshape(g, 16, g, 16, 3)
            .transpose(0, 2, 1, 3, 4)
            .reshape(g, g, -1)
        )
        - p.mean(axis=-1, keepdims=True)
        for f in frames
    ]
    base = _track(pixels)
    d = base.xy - _QUERIES
    assert abs(float(np.median(d[:, 0])) - _EXPECTED_DX) < 0.5, d[:, 0]
    assert np.mean(np.abs(d[:, 0] - _EXPECTED_DX) < 1.0) >= 0.8
    assert abs(float(np.median(d[:, 1]))) < 0.5


def test_random_weight_rvm_features_move_points_in_the_direction_of_the_shift() -> None:
    """The same frames through a *random-weight* tiny RVM: its features are weak (every
    cell carries the same position encoding in every frame and the recurrent state mixes
    in the previous frame, both pulling points to stay where they are). Only motion in the
    right direction is required (measured: a third to a half of the true shift on seeds
    0-3), no vertical drift, finite outputs and determinism; a trained checkpoint is needed
    for more.
    """
    import torch

    import rvm_ros

    frames, g, size, frames_n = _translated_frames(), _G, _SIZE, _FRAMES
    model = rvm_ros.load_model("random:tiny")
    state = model.init_state(1, size, size)
    grids = []
    with torch.no_grad():
        for t in range(frames_n):
            feats, state = model.step(torch.from_numpy(frames[t : t + 1]), state)
            assert feats.shape == (1, 1 + g * g, model.config.dim)
            grids.append(feats[0, 1:].reshape(g, g, -1).numpy())  # drop CLS, row-major grid
    rvm = _track(grids)
    assert np.isfinite(rvm.xy).all()
    assert ((rvm.confidence >= 0) & (rvm.confidence <= 1)).all()
    d = rvm.xy - _QUERIES
    assert float(np.mean(d[:, 0])) < -0.25, f"random RVM features: mean dx {np.mean(d[:, 0])}"
    assert abs(float(np.mean(d[:, 1]))) < 0.5
    again = _track(grids)
    np.testing.assert_array_equal(again.xy, rvm.xy)


def test_tapvid_metrics_of_a_synthetic_track_with_occlusion() -> None:
    """End to end with the TAP-Vid metrics: cells -> pixels (16 px per cell, 256x256)."""
    from rvm_ros.tracking.evaluation.tapvid import tapvid_metrics

    scene = Scene(seed=11)
    a, b = scene.feature(), scene.feature()
    truth_a = [(3, 2 + t) for t in range(10)]
    truth_b = [(12, 12 - t) for t in range(10)]
    hidden_b = {4, 5, 6}  # b is covered on these frames
    tracker = PointTracker()
    tracker.add_queries(np.array([centre(*truth_a[0]), centre(*truth_b[0])]), np.array([0, 1]))
    pred_xy = np.zeros((2, 10, 2))
    pred_vis = np.zeros((2, 10), dtype=bool)
    for t in range(10):
        objects = [(a, *truth_a[t])]
        if t not in hidden_b:
            objects.append((b, *truth_b[t]))
        state = tracker.update(scene.frame(*objects))
        pred_xy[:, t] = state.xy * 16
        pred_vis[:, t] = state.visible
    gt_xy = np.stack([[centre(*p) * 16 for p in truth_a], [centre(*p) * 16 for p in truth_b]])
    gt_vis = np.ones((2, 10), dtype=bool)
    gt_vis[1, sorted(hidden_b)] = False
    m = tapvid_metrics(gt_xy, gt_vis, pred_xy, pred_vis, [0, 0], (256, 256))
    assert m["occlusion_accuracy"] == 1.0
    assert m["pts_within_8"] == 1.0  # within half a cell everywhere it is visible
    assert m["jaccard_8"] == 1.0


def test_top_k_ties_go_to_the_earlier_key_whatever_the_split() -> None:
    """Similarities with many exact ties (small integers) split into pieces: the kept
    entries are those of a dense stable sort by (similarity descending, key ascending)."""
    rng = np.random.default_rng(13)
    tracker = PointTracker(TrackerConfig(topk=5))
    sims = rng.integers(0, 4, size=(40, 60)).astype(np.float32)
    sims[:5, :] = -np.inf  # rows with few finite entries: which -inf entries fill up is free
    sims[:5, 10:13] = 2.0
    keys = rng.permutation(60)
    splits = [(0, 7), (7, 30), (30, 60)]  # a piece narrower than k + 1, two wider
    pieces = [(sims[:, a:b], a, keys[a:b]) for a, b in splits]
    top, weights = tracker._select(pieces, 5)
    want = np.lexsort((np.broadcast_to(keys, sims.shape), -sims), axis=1)[:, :5]
    np.testing.assert_array_equal(top[5:], want[5:])
    np.testing.assert_array_equal(np.sort(top[:5, :3], axis=1), np.tile([10, 11, 12], (5, 1)))
    np.testing.assert_allclose(weights[:5, 3:], 0.0)
    s = np.take_along_axis(sims[5:], want[5:], axis=1)
    expect = np.exp((s - s[:, :1]) / tracker.config.temperature)
    np.testing.assert_allclose(weights[5:], expect / expect.sum(axis=1, keepdims=True), rtol=1e-6)
