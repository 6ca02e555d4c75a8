"""NodeStats counting and the /diagnostics summary (pure Python)."""

from __future__ import annotations

import threading

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
    stats.error("inference_thread_died")
    (node, _) = summarize(stats.snapshot(), None, 1.0, "/rvm", "x", True)
    assert node.level == ERROR and "inference thread stopped" in node.message
