"""Summarising a comparison of node-overhead variants (no runs: figures given)."""

from __future__ import annotations

import pytest

from rvm_ros.bench.node_overhead_compare import COMPARED, RATIO_FIGURES, summarise


def _run(variant: str, r: int, overhead: float, unaccounted: int) -> dict[str, object]:
    figs: dict[str, object] = {k: 1.0 for k in COMPARED}
    figs |= {"variant": variant, "round": r, "overhead_ms_p50": overhead}
    figs |= {"frames_unaccounted": unaccounted, "received_outputs": 9, "published": 10}
    figs |= {"lost_before_node": 1}
    return figs


def test_times_get_same_round_ratios_and_counts_only_medians() -> None:
    runs = [
        _run("raw", 0, 4.0, 0),
        _run("default", 0, 2.0, 3),
        _run("raw", 1, 10.0, 2),
        _run("default", 1, 8.0, 1),
        _run("raw", 2, 5.0, 0),
        _run("default", 2, 4.0, 0),
    ]
    out = summarise(runs, ["raw", "default"], 3)
    # Ratios per round (0.5, 0.8, 0.8), then their median; not the ratio of medians.
    assert out["ratio_default_over_raw_overhead_ms_p50_median"] == pytest.approx(0.8)
    assert out["raw_overhead_ms_p50_median"] == 5.0
    assert out["default_frames_unaccounted_median"] == 1.0
    assert not any(k.startswith("ratio_") and "unaccounted" in k for k in out)
    assert not any(k.startswith("ratio_") and "load_avg" in k for k in out)
    assert out["default_outputs_over_sent"] == ["9/10"] * 3


def test_a_missing_or_zero_reference_gives_no_ratio_for_that_round() -> None:
    runs = [_run("raw", 0, 0.0, 0), _run("default", 0, 2.0, 0)]
    runs += [_run("raw", 1, 4.0, 0), _run("default", 1, 3.0, 0)]
    out = summarise(runs, ["raw", "default"], 2)
    assert out["ratio_default_over_raw_overhead_ms_p50_median"] == pytest.approx(0.75)
    lone = summarise([_run("raw", 0, 0.0, 0), _run("default", 0, 2.0, 0)], ["raw", "default"], 1)
    assert "ratio_default_over_raw_overhead_ms_p50_median" not in lone
    assert lone["ratio_default_over_raw_step_ms_p50_median"] == 1.0  # the other figures stay
    assert set(COMPARED) >= RATIO_FIGURES
