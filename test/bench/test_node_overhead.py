"""Smoke test of the node-overhead benchmark (tiny size, a few frames; output shape only)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rvm_ros.msg")

from rvm_ros.bench.node_overhead import COMPARED, run

pytestmark = pytest.mark.ros


def test_node_overhead_reports_its_figures() -> None:
    res = run(
        seconds=2.0,
        warmup_s=0.5,
        rate_hz=10.0,
        width=64,
        height=48,
        model_size=32,
        tracking=False,
        input_reliability="reliable",
    )
    for key in COMPARED:
        assert isinstance(res[key], float), key
    assert math.isfinite(res["overhead_ms_p50"]) and math.isfinite(res["step_ms_p50"])
    assert res["node_received"] >= res["node_processed"] > 0
    assert res["drops_equal_not_processed"] is True
    assert res["rss_mib_last"] > 0
