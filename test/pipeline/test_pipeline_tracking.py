"""Processor + the real trackers: query points, pixel geometry, grid and corner seeding."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_fakes import FakeEncoder

from rvm_ros.pipeline import FrameInput, FrameResult, FrameSkip, ProcessingConfig, Processor
from rvm_ros.tracking.config import TrackerConfig


def make(enc: FakeEncoder, **kw: object) -> Processor:
    args: dict[str, object] = {
        "cameras": ("front", "rear"),
        "model_height": 64,
        "model_width": 64,
        "tracking": True,
    }
    args.update(kw)
    return Processor(ProcessingConfig(**args), enc)  # type: ignore[arg-type]


def run(proc: Processor, cam: str, t: int, h: int = 64, w: int = 64) -> FrameResult:
    img = np.random.default_rng(t).integers(0, 256, (h, w, 3), dtype=np.uint8)
    (r,) = proc.process([FrameInput(cam, t * 10_000_000, None, img)])
    assert isinstance(r, FrameResult), r
    return r


def tracks(r: FrameResult) -> dict[int, tuple[float, float]]:
    assert r.tracks is not None
    return {
        int(i): (float(x), float(y))
        for i, x, y in zip(r.tracks.ids, r.tracks.x, r.tracks.y, strict=True)
    }


@pytest.mark.parametrize(
    ("mode", "h", "w", "points"),
    [
        ("stretch", 48, 80, [(10.0, 5.0), (79.0, 47.5), (0.0, 0.0)]),
        ("letterbox", 32, 64, [(10.0, 5.0), (63.0, 31.0)]),
        ("center_crop", 64, 128, [(40.0, 5.0), (90.0, 60.0)]),
    ],
)
def test_query_points_come_back_in_image_pixels(
    mode: str, h: int, w: int, points: list[tuple[float, float]]
) -> None:
    proc = make(FakeEncoder(), resize_mode=mode)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ids = proc.set_query_points("front", xs, ys, append=False)
    assert ids == list(range(len(points)))
    r = run(proc, "front", 1, h, w)
    got = tracks(r)
    assert sorted(got) == ids
    # on the query frame the tracker reports the query position (confidence 1)
    for i, (x, y) in zip(ids, points, strict=True):
        assert got[i] == pytest.approx((x, y), abs=1e-3)
    assert r.tracks is not None
    assert r.tracks.visible.all() and np.allclose(r.tracks.confidence, 1.0)
    assert r.tracks.xy.shape == (len(points), 2) and len(r.tracks) == len(points)
    # later frames keep reporting every point
    assert sorted(tracks(run(proc, "front", 2, h, w))) == ids


def test_points_outside_the_seen_image_are_refused_once_the_size_is_known() -> None:
    proc = make(FakeEncoder(), resize_mode="center_crop")
    run(proc, "front", 1, 64, 128)  # crop keeps x in [32, 96)
    with pytest.raises(ValueError, match=r"point 1 \(x=130, y=5\) of camera 'front' is outside"):
        proc.set_query_points("front", [40, 130], [5, 5], append=True)
    with pytest.raises(ValueError, match=r"point 0 .* center_crop cuts away"):
        proc.set_query_points("front", [10], [5], append=True)
    # nothing was registered and no id was used
    assert proc.set_query_points("front", [40], [5], append=True) == [0]


def test_query_point_errors() -> None:
    proc = make(FakeEncoder())
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        proc.set_query_points("front", [1, 2], [1], append=True)
    with pytest.raises(ValueError, match="point 1 is not finite"):
        proc.set_query_points("front", [1, np.nan], [1, 2], append=True)
    with pytest.raises(ValueError, match="unknown camera 'side'"):
        proc.set_query_points("side", [1], [1], append=True)
    off = make(FakeEncoder(), tracking=False)
    with pytest.raises(ValueError, match="tracking is disabled"):
        off.set_query_points("front", [1], [1], append=True)
    assert run(off, "front", 1).tracks is None


def test_append_and_replace_and_all_cameras() -> None:
    proc = make(FakeEncoder(), track_grid=2)
    r = run(proc, "front", 1)
    assert sorted(tracks(r)) == [0, 1, 2, 3]  # the 2x2 grid: cells centred in each quadrant
    assert tracks(r)[0] == pytest.approx((16.0, 16.0)) and tracks(r)[3] == pytest.approx((48, 48))
    a = proc.set_query_points("front", [5], [5], append=True)
    b = proc.set_query_points("front", [6], [6], append=True)
    assert sorted(tracks(run(proc, "front", 2))) == [0, 1, 2, 3, *a, *b]
    c = proc.set_query_points("front", [7], [7], append=False)
    assert sorted(tracks(run(proc, "front", 3))) == [0, 1, 2, 3, *c]  # grid points stay
    both = proc.set_query_points("", [8, 9], [8, 9], append=True)
    assert both == [c[0] + 1, c[0] + 2]
    assert set(both) <= set(tracks(run(proc, "front", 4)))
    rear = tracks(run(proc, "rear", 4))
    assert set(both) <= set(rear) and not set(c) & set(rear)
    assert rear[both[1]] == pytest.approx((9.0, 9.0), abs=1e-3)


def test_grid_is_reseeded_with_new_ids_after_each_reset() -> None:
    proc = make(FakeEncoder(), track_grid=3, tracker=TrackerConfig(n_context=2))
    first = sorted(tracks(run(proc, "front", 1)))
    user = proc.set_query_points("front", [20], [30], append=True)
    assert first == list(range(9)) and user == [9]
    assert sorted(tracks(run(proc, "front", 2))) == [*first, 9]
    proc.reset("front")
    r = run(proc, "front", 3)
    assert r.reset_reason == "service"
    # new grid ids (never reused), the user point survives the reset
    assert sorted(tracks(r)) == [9, *range(10, 19)]
    r = run(proc, "rear", 3)
    assert sorted(tracks(r)) == list(range(19, 28))


def test_a_stream_gap_keeps_the_automatic_points() -> None:
    """Frames missing (``gap`` reset): the tracker re-finds its points, ids unchanged; the
    other resets replace the automatic points (test above)."""
    proc = make(FakeEncoder(), track_grid=3, reset_on_gap_s=0.5)
    first = sorted(tracks(run(proc, "front", 1)))
    assert first == list(range(9))
    r = run(proc, "front", 200)  # 2 s later: more than reset_on_gap_s
    assert r.reset_reason == "gap"
    assert sorted(tracks(r)) == first
    proc.reset("front")
    r = run(proc, "front", 201)
    assert r.reset_reason == "service" and sorted(tracks(r)) == list(range(9, 18))


def test_tracking_is_skipped_with_a_non_finite_frame() -> None:
    enc = FakeEncoder()
    proc = make(enc)
    ids = proc.set_query_points("front", [30], [30], append=True)
    enc.nan_cameras.add("front")
    (skip,) = proc.process([FrameInput("front", 1, None, np.zeros((64, 64, 3), np.uint8))])
    assert isinstance(skip, FrameSkip)
    enc.nan_cameras.clear()
    r = run(proc, "front", 2)
    assert r.reset_reason == "non_finite" and r.reset_count == 2
    assert tracks(r)[ids[0]] == pytest.approx((30.0, 30.0), abs=1e-3)


def test_a_tracker_failure_keeps_the_features(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    proc = make(FakeEncoder())
    ids = proc.set_query_points("front", [30], [30], append=True)
    run(proc, "front", 1)
    tracking = proc._cameras["front"].tracking
    assert tracking is not None
    tracker = tracking.tracker  # the real tracker of that camera

    def fail(*args: object) -> object:
        raise ValueError("simulated tracker failure")

    monkeypatch.setattr(tracker, "update", fail)
    r = run(proc, "front", 2)
    assert r.tracks is None and r.features.shape == (4, 4, 8)
    assert "tracking failed on stamp 20000000: simulated tracker failure" in caplog.text
    assert proc.stats["front"].tracking_errors == 1
    monkeypatch.undo()
    assert sorted(tracks(run(proc, "front", 3))) == ids  # the point is still tracked


def _scene(t: int, shift: int = 0) -> np.ndarray:
    """A textured 64x64 frame (smooth random blobs), panned ``shift`` pixels per frame."""
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (24, 40, 3)).astype(np.uint8)
    import cv2

    big = cv2.resize(big, (320, 192), interpolation=cv2.INTER_CUBIC)
    x0 = 40 + shift * t
    return np.ascontiguousarray(big[40:104, x0 : x0 + 64])


def _run_image(proc: Processor, cam: str, t: int, img: np.ndarray) -> FrameResult:
    (r,) = proc.process([FrameInput(cam, t * 100_000_000, None, img)])
    assert isinstance(r, FrameResult), r
    return r


def test_corner_seeding_gives_points_with_confidence() -> None:
    proc = make(FakeEncoder(), track_corners=12)
    r = _run_image(proc, "front", 1, _scene(1))
    assert r.tracks is not None
    assert 4 <= len(r.tracks.ids) <= 12
    assert r.tracks.visible.all() and (r.tracks.confidence == 1.0).all()
    r2 = _run_image(proc, "front", 2, _scene(2))
    assert r2.tracks is not None and r2.tracks.ids.tolist() == r.tracks.ids.tolist()
    assert ((r2.tracks.confidence >= 0) & (r2.tracks.confidence <= 1)).all()
    assert r2.tracks.visible.mean() > 0.5  # the same frame content: still there


def test_lost_automatic_points_are_replaced_with_new_ids() -> None:
    proc = make(FakeEncoder(), track_corners=10, track_reseed_s=0.25)
    first = _run_image(proc, "front", 1, _scene(1))
    assert first.tracks is not None
    seeded = set(first.tracks.ids.tolist())
    user = proc.set_query_points("front", [20.0], [20.0], append=True)
    blank = np.full((64, 64, 3), 128, np.uint8)  # everything disappears ...
    for t in range(2, 6):  # ... for 0.4 s (> 0.25 s)
        r = _run_image(proc, "front", t, blank)
    r = _run_image(proc, "front", 6, _scene(6))  # the replacements start here
    assert r.tracks is not None
    ids = set(r.tracks.ids.tolist())
    assert not ids & seeded  # every lost automatic point was replaced ...
    assert len(ids - set(user)) >= 4 and min(ids - set(user)) > max(seeded | set(user))  # new ids
    assert set(user) <= ids  # ... user points are never replaced
    assert r.tracks.visible[~np.isin(r.tracks.ids, user)].all()


def test_shipped_config_seeds_points_for_a_newcomer(repo_root: object) -> None:
    from pathlib import Path

    from rvm_ros.pipeline.params import config_from_params, load_params_file

    params = load_params_file(Path(str(repo_root)) / "config" / "rvm.yaml")
    cfg = config_from_params({**params, "checkpoint": "random:tiny"}).processing
    assert cfg.track_corners > 0 and cfg.tracking
    assert cfg.tracker is not None and cfg.tracker.method == "hybrid"
    small = ProcessingConfig(
        cameras=("front",),
        model_height=64,
        model_width=64,
        track_corners=cfg.track_corners,
        tracker=cfg.tracker,
    )
    r = _run_image(Processor(small, FakeEncoder()), "front", 1, _scene(1))
    assert r.tracks is not None and len(r.tracks.ids) > 0


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [({"track_corners": -1}, "track_corners"), ({"track_reseed_s": -0.5}, "track_reseed_s"),
     ({"track_reseed_s": float("inf")}, "track_reseed_s"),
     ({"track_corners": 2.5}, "track_corners")],
)  # fmt: skip
def test_seeding_parameters_are_validated(kwargs: dict[str, object], param: str) -> None:
    from rvm_ros.pipeline.config import ConfigError

    with pytest.raises(ConfigError, match=param):
        ProcessingConfig(cameras=("front",), **kwargs)  # type: ignore[arg-type]


def _camera_frames(h: int, w: int, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Two views of a smooth random texture, the second moved by ``shift`` (exact at 1/4 px:
    rendered 4x larger and area-averaged)."""
    import cv2

    up, margin = 4, 8
    rng = np.random.default_rng(7)
    small = rng.integers(0, 256, ((h + 2 * margin) // 4, (w + 2 * margin) // 4, 3), np.uint8)
    size = ((w + 2 * margin) * up, (h + 2 * margin) * up)
    big = cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)

    def view(dx: float, dy: float) -> np.ndarray:
        ox, oy = round((margin - dx) * up), round((margin - dy) * up)
        crop = big[oy : oy + h * up, ox : ox + w * up]
        return np.ascontiguousarray(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA))

    return view(0.0, 0.0), view(*shift)


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "center_crop"])
@pytest.mark.parametrize("method", ["hybrid", "klt"])
def test_points_are_tracked_on_the_camera_image_at_its_resolution(mode: str, method: str) -> None:
    """A 640x480 camera and a 64x64 network input (10x smaller): the tracker works on the
    camera image, so a sub-pixel motion comes back within a quarter image pixel (tracking
    on the network input could not resolve it)."""
    import cv2

    shift = (1.25, -0.75)
    f0, f1 = _camera_frames(480, 640, shift)
    tracker = TrackerConfig(method=method)
    proc = make(FakeEncoder(), resize_mode=mode, tracker=tracker, cameras=("front",))
    grey = cv2.cvtColor(f0, cv2.COLOR_RGB2GRAY)
    c = cv2.goodFeaturesToTrack(grey, 24, 0.01, 20).reshape(-1, 2) + 0.5
    c = c[(c[:, 0] > 100) & (c[:, 0] < 540) & (c[:, 1] > 40) & (c[:, 1] < 440)]
    assert c.shape[0] >= 8
    ids = proc.set_query_points("front", c[:, 0].tolist(), c[:, 1].tolist(), append=False)
    for t, frame in enumerate((f0, f1)):
        (r,) = proc.process([FrameInput("front", (t + 1) * 10_000_000, None, frame)])
        assert isinstance(r, FrameResult) and r.tracks is not None
    got = tracks(r)
    err = [
        np.hypot(got[i][0] - x - shift[0], got[i][1] - y - shift[1])
        for i, (x, y) in zip(ids, c, strict=True)
    ]
    assert r.tracks.visible.all()
    assert max(err) < 0.25, err
