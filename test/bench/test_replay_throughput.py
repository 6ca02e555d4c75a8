"""Smoke test of the replay-throughput benchmark (tiny size; the shape of its output only)."""

from __future__ import annotations

import math

from rvm_ros.bench.replay_throughput import measure


def test_replay_throughput_reports_its_figures() -> None:
    res = measure(size=(32, 32), frames=4, warmup=1, repeats=1)
    assert (res["checkpoint"], res["backend"], res["precision"]) == ("random:tiny", "torch", "fp32")
    assert res["size"] == [32, 32] and res["frames"] == 4 and res["repeats"] == 1
    for key in (
        "bare_fps",
        "replay_fps",
        "ratio",
        "replay_wall_s",
        "model_step_s",
        "decode_s",
        "write_s",
        "process_s",
        "outside_step_fraction",
    ):
        assert isinstance(res[key], float) and math.isfinite(res[key]), key
    assert res["bare_fps"] > 0 and res["replay_fps"] > 0
    assert res["ratio"] == res["replay_fps"] / res["bare_fps"]
    assert 0.0 <= res["outside_step_fraction"] < 1.0
