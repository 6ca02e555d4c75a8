"""TrackQueue (bounded hand-over to the tracking thread) and Processor(defer_tracking=True)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from pipeline_fakes import FakeEncoder

from rvm_ros.imaging.preprocess import fit_geometry
from rvm_ros.pipeline import FrameInput, FrameResult, ProcessingConfig, Processor, TrackJob
from rvm_ros.pipeline.track_queue import TrackQueue


def job(camera: str, stamp: int, reset: str = "") -> TrackJob:
    img = np.zeros((8, 8, 3), np.uint8)
    geo = fit_geometry(8, 8, 8, 8, "stretch")
    return TrackJob(camera, stamp, img, None, geo, reset)


def test_one_job_per_camera_the_newest_wins_and_is_marked_as_a_gap() -> None:
    q: TrackQueue[str] = TrackQueue()
    assert q.put(job("a", 1), "a1") is False
    assert q.put(job("b", 1), "b1") is False
    assert q.put(job("a", 2), "a2") is True  # a1 dropped
    assert q.put(job("a", 3), "a3") is True  # a2 dropped
    assert len(q) == 2 and q.dropped == {"a": 2}
    first = q.get(0.0)
    assert first is not None
    j, payload, gap = first
    assert (j.camera, j.stamp_ns, payload, gap) == ("a", 3, "a3", True)  # a kept its place
    second = q.get(0.0)
    assert second is not None and second[0].camera == "b" and second[2] is False
    assert q.get(0.0) is None


@pytest.mark.parametrize(
    ("dropped", "new", "kept"),
    [
        ("gap", "", "gap"),
        ("service", "gap", "service"),
        ("", "gap", "gap"),
        ("gap", "service", "service"),
    ],
)
def test_a_reset_of_a_dropped_job_is_carried_over(dropped: str, new: str, kept: str) -> None:
    q: TrackQueue[None] = TrackQueue()
    q.put(job("a", 1, dropped), None)
    q.put(job("a", 2, new), None)
    entry = q.get(0.0)
    assert entry is not None and entry[0].stamp_ns == 2 and entry[0].reset_reason == kept


def test_get_waits_for_a_job_and_close_wakes_it() -> None:
    q: TrackQueue[int] = TrackQueue()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(q.get(5.0)))
    t.start()
    time.sleep(0.05)
    q.put(job("a", 7), 7)
    t.join(2.0)
    assert got and got[0] is not None and got[0][1] == 7  # type: ignore[index]
    t0 = time.monotonic()
    t = threading.Thread(target=lambda: got.append(q.get(30.0)))
    t.start()
    q.close()
    t.join(5.0)
    assert not t.is_alive() and got[-1] is None and time.monotonic() - t0 < 5.0
    assert q.put(job("a", 8), 8) is False and q.clear() == 1


def frames(n: int) -> list[np.ndarray]:
    """A textured image moving right by one pixel per frame."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, 16 - t : 80 - t]) for t in range(n)]


@pytest.mark.parametrize("method", ["hybrid", "klt", "propagation"])
def test_deferred_tracking_gives_the_same_tracks(method: str) -> None:
    from rvm_ros.tracking.config import TrackerConfig

    cfg = ProcessingConfig(
        cameras=("front",),
        model_height=64,
        model_width=64,
        tracking=True,
        track_grid=4,
        tracker=TrackerConfig(method=method),
    )
    sync = Processor(cfg, FakeEncoder())
    deferred = Processor(cfg, FakeEncoder(), defer_tracking=True)
    assert deferred.defer_tracking and not sync.defer_tracking
    for t, img in enumerate(frames(6)):
        fi = FrameInput("front", t * 10_000_000, None, img)
        (a,) = sync.process([fi])
        (b,) = deferred.process([fi])
        assert isinstance(a, FrameResult) and isinstance(b, FrameResult)
        assert a.track_job is None and a.tracks is not None
        assert b.tracks is None and b.track_job is not None
        assert b.track_job.image is not img  # owned: the batch buffer is reused
        got = deferred.track(b.track_job)
        assert got is not None
        np.testing.assert_array_equal(got.ids, a.tracks.ids)
        np.testing.assert_allclose(got.xy, a.tracks.xy, atol=1e-5)
        np.testing.assert_array_equal(got.visible, a.tracks.visible)


def test_a_gap_keeps_the_points() -> None:
    cfg = ProcessingConfig(
        cameras=("front",), model_height=64, model_width=64, tracking=True, track_grid=3
    )
    proc = Processor(cfg, FakeEncoder(), defer_tracking=True)
    imgs = frames(8)
    ids = None
    for t in (0, 1, 2, 6):  # frames 3-5 were dropped from tracking
        (r,) = proc.process([FrameInput("front", t * 10_000_000, None, imgs[t])])
        assert isinstance(r, FrameResult) and r.track_job is not None
        got = proc.track(r.track_job, gap=t == 6)
        assert got is not None
        ids = got.ids if ids is None else ids
        np.testing.assert_array_equal(got.ids, ids)  # same points, not re-seeded


def test_without_tracking_nothing_is_deferred() -> None:
    cfg = ProcessingConfig(cameras=("front",), model_height=64, model_width=64, tracking=False)
    proc = Processor(cfg, FakeEncoder(), defer_tracking=True)
    (r,) = proc.process([FrameInput("front", 0, None, frames(1)[0])])
    assert isinstance(r, FrameResult) and r.track_job is None and r.tracks is None
