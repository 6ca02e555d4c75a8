"""Bench library: report shape, reference row, cosine, markdown (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rvm_ros.bench.runtime import Target, append_markdown, markdown_table, run_bench, write_json
from rvm_ros.imaging.synthetic import synthetic_frames

RESULT_KEYS = {
    "backend",
    "precision",
    "device",
    "cameras",
    "height",
    "width",
    "latency_ms",
    "throughput_fps",
    "peak_rss_mb",
    "speedup_vs_torch_eager_fp32",
}


def test_synthetic_frames_are_deterministic_and_moving() -> None:
    a = synthetic_frames(3, 2, 32, 48, seed=1)
    b = synthetic_frames(3, 2, 32, 48, seed=1)
    assert a.shape == (3, 2, 32, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # frames change over time
    assert not np.array_equal(a[0, 0], a[0, 1])  # cameras differ


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("bench_cache")
    return run_bench(
        "random:tiny",
        [Target("torch", "bf16"), Target("onnxruntime", "int8")],
        height=32,
        width=64,
        cameras=2,
        frames=4,
        warmup=1,
        cache_dir=str(cache),
        rounds=2,
        isolate=False,
    )


def test_report_shape(report: dict) -> None:
    assert set(report) == {"machine", "config", "results"}
    assert report["machine"]["cores"] >= 1 and report["machine"]["torch"]
    rows = report["results"]
    assert [(r["backend"], r["precision"]) for r in rows] == [
        ("torch", "fp32"),
        ("torch", "bf16"),
        ("onnxruntime", "int8"),
    ]
    for r in rows:
        assert set(r) >= RESULT_KEYS
        assert (r["cameras"], r["height"], r["width"], r["device"]) == (2, 32, 64, "cpu")
        lat = r["latency_ms"]
        assert set(lat) == {"p50", "p90", "p99"}
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert r["steps"] == 4  # 2 rounds x 2 steps
        assert r["throughput_fps"] == pytest.approx(2 * 1000.0 / lat["p50"])
        assert r["peak_rss_mb"] > 0
        ref_p50 = rows[0]["latency_ms"]["p50"]
        assert r["speedup_vs_torch_eager_fp32"] == pytest.approx(ref_p50 / lat["p50"])
        assert r["model_id"] == "tiny-random0"
        assert len(r["round_p50_ms"]) == 2  # one p50 per round
        pairs = [a / b for a, b in zip(rows[0]["round_p50_ms"], r["round_p50_ms"], strict=True)]
        assert r["speedup_paired"] == pytest.approx(float(np.median(pairs)))
    assert rows[0]["reference"] is True and rows[0]["cosine_vs_fp32"] == pytest.approx(1.0)
    # reduced precisions stay close to float32 but are not identical
    for r in rows[1:]:
        assert 0.99 <= r["cosine_vs_fp32"] < 1.0 - 1e-9


def test_json_and_markdown(report: dict, tmp_path: Path) -> None:
    path = write_json(report, tmp_path / "out" / "bench.json")
    assert json.loads(path.read_text())["results"][0]["backend"] == "torch"
    table = markdown_table(report, "rvm-ros bench --random-variant tiny")
    assert "Command: `rvm-ros bench --random-variant tiny`" in table
    assert "| torch (reference) | fp32 | cpu |" in table
    assert "| onnxruntime | int8 | cpu |" in table
    assert report["machine"]["cpu"] in table
    md = tmp_path / "B.md"
    md.write_text("# Benchmarks\n")
    append_markdown(table, md)
    append_markdown(table, md)
    text = md.read_text()
    assert text.startswith("# Benchmarks\n") and text.count("| torch (reference) |") == 2


def test_isolated_measurement_reports_its_own_process(tmp_path: Path) -> None:
    out = run_bench(
        "random:tiny", [], height=32, width=32, frames=2, warmup=0, cache_dir=str(tmp_path)
    )
    (row,) = out["results"]
    assert row["backend"] == "torch" and row["steps"] == 2
    assert out["config"]["isolated"] is True


def test_bad_counts() -> None:
    with pytest.raises(ValueError, match="need frames >= 1"):
        run_bench("random:tiny", [], frames=0, isolate=False)
