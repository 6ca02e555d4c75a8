"""NodeStats counting and the /diagnostics summary (pure Python)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rvm_ros.node.diagnostics import ERROR, OK, WARN, NodeStats, summarize


def _values(status) -> dict[str, str]:
    return dict(status.values)


def test_rejections_are_counted_and_reported_once_per_cause() -> None:
    stats = NodeStats(["front", "rear"])
    assert stats.rejected("front", "empty") is True
    assert stats.rejected("front", "empty") is False
    assert stats.rejected("rear", "empty") is True  # per camera
    assert stats.rejected("front", "too_large") is True
    snap = stats.snapshot()
    assert dict(snap["cameras"]["front"].rejected) == {"empty": 2, "too_large": 1}


def test_summary_has_rates_percentiles_resets_and_levels() -> None:
    stats = NodeStats(["front"])
    prev = stats.snapshot()
    for i in range(10):
        stats.received("front")
        stats.processed("front", "first_frame" if i == 0 else None)
        stats.step(0.001 * (i + 1), 1)
    stats.received("front")
    stats.dropped("front")
    stats.rejected("front", "empty")
    stats.processed("front", "gap")
    snap = stats.snapshot()
    node, cam = summarize(snap, prev, 2.0, "/rvm", "torch fp32 on cpu", True)
    assert node.name == "/rvm: node" and node.level == OK and node.message == "active"
    nv = _values(node)
    assert nv["runtime"] == "torch fp32 on cpu"
    assert nv["steps"] == "10"
    assert float(nv["step_latency_p50_ms"]) == pytest.approx(5.5)
    assert float(nv["step_latency_p99_ms"]) == pytest.approx(9.91)
    cv = _values(cam)
    assert cam.name == "/rvm: camera front"
    assert cam.level == WARN and "1 input(s) rejected" in cam.message
    assert cv["rate_in_hz"] == "5.50" and cv["rate_out_hz"] == "5.50"
    assert (cv["received"], cv["processed"], cv["dropped"]) == ("11", "11", "1")
    assert cv["resets"] == "2" and cv["resets_by_reason"] == "first_frame=1, gap=1"
    assert cv["rejected_by_cause"] == "empty=1"
    # The next period: no new rejections, back to OK; rates over the new period only.
    stats.received("front")
    _, cam2 = summarize(stats.snapshot(), snap, 1.0, "/rvm", "x", True)
    assert cam2.level == OK and _values(cam2)["rate_in_hz"] == "1.00"


def test_inactive_and_qos_problems_raise_the_node_level() -> None:
    stats = NodeStats(["front"])
    (node, _) = summarize(stats.snapshot(), None, 1.0, "/rvm", "not loaded", False)
    assert node.level == WARN and node.message.startswith("inactive")
    assert stats.qos_incompatible("/front/image_raw") is True
    assert stats.qos_incompatible("/front/image_raw") is False
    (node, cam) = summarize(stats.snapshot(), None, 1.0, "/rvm", "x", True)
    assert node.level == WARN and "incompatible QoS on 1 topic" in node.message
    assert _values(node)["qos_incompatible"] == "/front/image_raw=2"
    assert _values(cam)["rate_in_hz"] == "nan"  # no previous period yet


def test_counting_is_thread_safe() -> None:
    stats = NodeStats(["front"])

    def work() -> None:
        for _ in range(2000):
            stats.received("front")
            stats.dropped("front")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cam = stats.snapshot()["cameras"]["front"]
    assert (cam.received, cam.dropped) == (8000, 8000)


def test_node_errors_are_reported_and_a_dead_inference_thread_is_an_error() -> None:
    stats = NodeStats(["front"])
    assert stats.error("publish_error") is True
    assert stats.error("publish_error") is False
    (node, _) = summarize(stats.snapshot(), None, 1.0, "/rvm", "x", True)
    assert node.level == OK and _values(node)["errors"] == "publish_error=2"
    stats.error("tracking_dropped")
    (node, _) = summarize(stats.snapshot(), None, 1.0, "/rvm", "x", True)
    assert node.level == OK and "tracking_dropped=1" in _values(node)["errors"]
    stats.error("tracking_thread_died")
    (node, _) = summarize(stats.snapshot(), None, 1.0, "/rvm", "x", True)
    assert node.level == ERROR and "tracking thread stopped" in node.message
    stats.error("inference_thread_died")
    (node, _) = summarize(stats.snapshot(), None, 1.0, "/rvm", "x", True)
    assert node.level == ERROR and "inference thread stopped" in node.message


def test_a_stalled_tracker_is_an_error_not_silence() -> None:
    """Issue 27: a tracker stuck on one frame left /diagnostics OK while tracks stopped."""
    from rvm_ros.node.diagnostics import TRACKING_STALL_S

    stats = NodeStats(["front", "rear"])
    snap = stats.snapshot()
    snap["tracking_busy"] = ("front", TRACKING_STALL_S / 10)
    node, front, rear = summarize(snap, None, 1.0, "/rvm", "x", True)
    assert node.level == OK and front.level == OK  # busy, but not for long
    snap["tracking_busy"] = ("front", TRACKING_STALL_S + 7)
    node, front, rear = summarize(snap, None, 1.0, "/rvm", "x", True)
    assert node.level == ERROR and "tracking stalled: camera front's tracker" in node.message
    assert front.level == ERROR and "stalled" in front.message
    assert rear.level == OK


def test_outputs_report_how_long_the_tracking_thread_is_busy() -> None:
    import logging
    import time

    from rvm_ros.node.outputs import Outputs

    release = threading.Event()

    class _Stuck:  # a processor whose tracker hangs on the frame it gets
        def track(self, job, gap=False):
            release.wait(10)
            return None

    class _Res:
        camera = "front"

    out = Outputs({}, NodeStats(["front"]), logging.getLogger("test"))
    out.start_tracking(_Stuck())
    try:
        assert out.tracking_busy() is None
        assert out._queue is not None
        from types import SimpleNamespace

        job = SimpleNamespace(camera="front", reset_reason="")
        out._queue.put(job, (_Res(), None))  # type: ignore[arg-type]
        deadline = time.monotonic() + 5
        while out.tracking_busy() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = out.tracking_busy()
        assert busy is not None and busy[0] == "front" and busy[1] >= 0
    finally:
        release.set()
        out.stop()
    assert out.tracking_busy() is None


@pytest.mark.parametrize("estimated", [False, True])
def test_lost_frames_warn_with_the_hint_and_say_where_the_count_comes_from(
    estimated: bool,
) -> None:
    from rvm_ros.node.diagnostics import LOSS_HINT

    stats = NodeStats(["front"])
    if estimated:
        stats.estimate_loss("front")
    prev = stats.snapshot()
    stats.received("front")
    assert stats.lost("front", 7, estimated=estimated) is True
    assert stats.lost("front", 2, estimated=estimated) is False  # logged once
    _, cam = summarize(stats.snapshot(), prev, 1.0, "/rvm", "x", True)
    assert cam.level == WARN
    assert "9 frame(s) lost in transport" in cam.message and LOSS_HINT in cam.message
    assert ("estimated from stamp gaps" in cam.message) is estimated
    values = _values(cam)
    assert values["lost_in_transport"] == "9"
    assert values["lost_source"] == ("estimate (stamp gaps)" if estimated else "rmw event")
    # No new loss in the next period: OK again, the total stays.
    snap = stats.snapshot()
    _, cam2 = summarize(stats.snapshot(), snap, 1.0, "/rvm", "x", True)
    assert cam2.level == OK and _values(cam2)["lost_in_transport"] == "9"


@pytest.mark.parametrize(
    ("kept", "expected"),
    [
        (lambda i: True, 0),  # nothing lost
        # Every third frame lost: frames 1, 4, ..., 97 (those within the first 8
        # intervals counted once the period is learnt).
        (lambda i: i % 3 != 1, 33),
        # 8 of every 10 lost from frame 22 on: 22-29, 32-39, ..., 82-89.
        (lambda i: i < 20 or i % 10 == 0 or i % 10 == 1, 56),
        (lambda i: i < 50 or i >= 90, 0),  # a 40-frame pause: not counted as loss
    ],
)
def test_stamp_gap_estimator_counts_missing_frames(kept, expected: int) -> None:
    from rvm_ros.node.stamp_gaps import StampGapEstimator

    est = StampGapEstimator()
    rng = np.random.default_rng(0)
    period = 33_333_333
    total = 0
    for i in range(100):
        if kept(i):
            jitter = int(rng.integers(-2_000_000, 2_000_000))  # +-2 ms
            total += est.update(10**12 + i * period + jitter)
    assert total == expected


def test_stamp_gap_estimator_ignores_time_going_backwards() -> None:
    from rvm_ros.node.stamp_gaps import StampGapEstimator

    est = StampGapEstimator(min_intervals=2)
    for t in (0, 10, 20, 30, 5, 15):
        assert est.update(t) == 0


def test_each_distinct_failure_message_is_logged_once_per_period() -> None:
    """A later, different failure with the same cause is logged (issue 12, defect 9)."""
    stats = NodeStats(["front"])
    assert stats.rejected("front", "too_large", "image 5000x5000 is too large") is True
    assert stats.rejected("front", "too_large", "image 5000x5000 is too large") is False
    assert stats.rejected("front", "too_large", "image 9000x9000 is too large") is True
    assert stats.skipped("front", "non_finite", "model output has 3 NaN/inf values") is True
    assert stats.skipped("front", "non_finite", "model output has 3 NaN/inf values") is False
    stats.new_period()  # the next diagnostics period: the same message is logged again
    assert stats.rejected("front", "too_large", "image 5000x5000 is too large") is True
    # bounded: a flood of distinct messages is only counted after the first few
    logged = [stats.rejected("front", "empty", f"message {i}") for i in range(20)]
    assert sum(logged) == 5
    assert stats.snapshot()["cameras"]["front"].rejected["empty"] == 20


def test_camera_is_error_when_every_frame_is_non_finite() -> None:
    """A camera that processes nothing because of NaN output is ERROR, not OK (issue 12)."""
    stats = NodeStats(["front", "rear"])
    prev = stats.snapshot()
    for _ in range(4):
        stats.received("front")
        stats.skipped("front", "non_finite", "model output has NaN values")
        stats.received("rear")
        stats.processed("rear")
    stats.received("rear")
    stats.skipped("rear", "non_finite", "model output has NaN values")
    _node, front, rear = summarize(stats.snapshot(), prev, 1.0, "/rvm", "torch", True)
    assert front.level == ERROR and "non-finite" in front.message
    assert "all 4 frame(s)" in front.message
    assert rear.level == OK  # one NaN frame among processed ones is not an outage


def test_stopping_does_not_wait_long_for_a_stuck_tracker() -> None:
    """Issue 27: the node took 5-15 s to stop on SIGTERM while its tracker was stuck."""
    import logging
    import time
    from types import SimpleNamespace

    from rvm_ros.node.outputs import Outputs

    release = threading.Event()
    started = threading.Event()

    class _Stuck:
        def track(self, job, gap=False):
            started.set()
            release.wait(30)
            return None

    out = Outputs({}, NodeStats(["front"]), logging.getLogger("test"))
    out.start_tracking(_Stuck())
    try:
        assert out._queue is not None
        res = SimpleNamespace(camera="front")
        out._queue.put(SimpleNamespace(camera="front", reset_reason=""), (res, None))  # type: ignore[arg-type]
        assert started.wait(10)
        t0 = time.monotonic()
        out.stop()
        assert time.monotonic() - t0 < 5.0
    finally:
        release.set()


@pytest.mark.parametrize(
    ("missing", "lost", "estimated", "overwritten"),
    [(0, 0, False, 0), (14, 0, False, 14), (14, 4, False, 10), (3, 5, False, 0), (9, 9, True, 0)],
    ids=["none", "all-overwritten", "some-lost", "event-ahead-of-gaps", "rmw-without-event"],
)
def test_overwritten_frames_are_the_gaps_transport_does_not_explain(
    missing: int, lost: int, estimated: bool, overwritten: int
) -> None:
    from rvm_ros.node.diagnostics import CameraCounters

    c = CameraCounters(received=20, lost=lost, lost_estimated=estimated, missing=missing)
    assert c.overwritten == overwritten
    assert c.published == 20 + lost + overwritten


def test_a_restarted_gap_estimator_does_not_count_the_unstamped_frame() -> None:
    from rvm_ros.node.stamp_gaps import StampGapEstimator

    est = StampGapEstimator()
    period = 33_000_000
    assert sum(est.update(i * period) for i in range(12)) == 0
    est.restart()  # frame 12 was received but unreadable: its stamp is unknown
    assert est.update(13 * period) == 0  # no gap counted for it
    assert est.update(16 * period) == 2  # frames 14 and 15 never arrived


@pytest.mark.parametrize(
    ("kept", "expected"),
    [
        # A burst in the first frames: 2-6 missing while the period is still being learnt.
        (lambda i: i < 2 or i > 6, 5),
        # Frames 1 and 3 missing among the first (each a one-frame gap).
        (lambda i: i not in (1, 3), 2),
        # Heavy loss from the start: two of every four of the first 24 frames missing, so
        # half the first intervals span 3 periods (a plain median would take 3 periods).
        (lambda i: i >= 24 or i % 4 in (0, 1), 12),
    ],
    ids=["burst-at-start", "single-frames-at-start", "heavy-loss-at-start"],
)
def test_gaps_while_the_period_is_learnt_are_counted_once_it_is_known(kept, expected: int) -> None:
    from rvm_ros.node.stamp_gaps import StampGapEstimator

    est = StampGapEstimator()
    rng = np.random.default_rng(1)
    period = 33_333_333
    counts = []
    for i in range(60):
        if kept(i):
            jitter = int(rng.integers(-2_000_000, 2_000_000))  # +-2 ms
            counts.append(est.update(10**12 + i * period + jitter))
    assert sum(counts) == expected
    assert est.period_ns is not None and abs(est.period_ns - period) < 2_000_000
    # Nothing counted before the 8th interval; the gaps kept until then counted at it.
    assert counts[:8] == [0] * 8 and counts[8] > 0


def test_the_learning_count_is_not_repeated_after_a_restart() -> None:
    from rvm_ros.node.stamp_gaps import StampGapEstimator

    est = StampGapEstimator(min_intervals=4)
    period = 10_000
    assert [est.update(t * period) for t in (0, 1, 3, 4)] == [0, 0, 0, 0]
    assert est.update(5 * period) == 1  # learnt: frame 2 counted now
    est.restart()
    assert [est.update(t * period) for t in (7, 8, 10)] == [0, 0, 1]
    assert est.period_ns == period


def test_every_received_frame_is_in_flight_until_it_lands_in_one_bucket() -> None:
    stats = NodeStats(["front"])
    for _ in range(7):
        stats.received("front")
    c = stats.snapshot()["cameras"]["front"]
    assert c.in_flight == 7
    stats.processed("front")
    stats.dropped("front", 2)
    stats.ignored("front")
    stats.rejected("front", "empty")
    stats.skipped("front", "non_finite")
    stats.stopped("front", 1)
    c = stats.snapshot()["cameras"]["front"]
    assert c.in_flight == 0 and c.stopped == 1
    values = dict(summarize(stats.snapshot(), None, 1.0, "/rvm", "torch", True)[1].values)
    assert (values["in_flight"], values["stopped_unprocessed"], values["dropped"]) == (
        "0",
        "1",
        "2",
    )


@pytest.mark.parametrize(("transport_loss", "expected"), [(False, 0), (True, 59)])
def test_a_long_gap_counts_only_when_transport_lost_frames_within_it(
    transport_loss: bool, expected: int
) -> None:
    # 60 periods without a frame: a camera pause (nothing counted), or, when the RMW
    # reported frames lost within it, a reliable transport stalled on a resent frame
    # while the camera went on publishing (every frame of it counted).
    from rvm_ros.node.stamp_gaps import StampGapEstimator

    est = StampGapEstimator()
    period = 33_000_000
    assert sum(est.update(i * period) for i in range(12)) == 0
    assert est.update(71 * period, transport_loss) == expected
    assert est.update(72 * period, transport_loss) == 0
    assert est.update(500 * period, True) == 0  # longer than any stall: a restart


def test_frames_lost_before_the_first_frame_explain_no_stamp_gap() -> None:
    from rvm_ros.node.diagnostics import CameraCounters

    # 3 lost in transport before the first frame arrived, 4 later; 10 missing from stamps.
    c = CameraCounters(received=50, lost=7, missing=10, lost_before_first=3)
    assert c.overwritten == 6
    assert c.published == 50 + 7 + 6
    stats = NodeStats(["front"])
    stats.lost("front", 3)
    stats.first_frame("front")
    stats.lost("front", 4)
    assert stats.snapshot()["cameras"]["front"].lost_before_first == 3
