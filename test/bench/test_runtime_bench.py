"""Bench library: report shape, reference row, cosine, markdown (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rvm_ros.bench.runtime import Target, run_bench
from rvm_ros.bench.runtime_report import append_markdown, markdown_table, write_json
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
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
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


def test_report_shape(report: dict[str, Any]) -> None:
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


def test_json_and_markdown(report: dict[str, Any], tmp_path: Path) -> None:
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


def test_batched_rows_real_frames_and_figure_of_merit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rvm_ros.bench.runtime as bench

    clip = tmp_path / "clip.npy"
    np.save(clip, synthetic_frames(12, 1, 48, 64, seed=4)[:, 0])  # a stand-in "video" file
    # a small matmul for the peak keeps the test short; the CLI measures 2048x2048
    monkeypatch.setattr(
        bench, "measure_peaks", lambda threads: {"peaks": bench_peaks(threads)}, raising=True
    )
    out = run_bench(
        "random:tiny",
        [Target("torch", "bf16", 1), Target("torch", "bf16", 3)],
        height=32,
        width=32,
        frames=3,
        warmup=0,
        cache_dir=str(tmp_path),
        isolate=False,
        video=str(clip),
        peaks=True,
    )
    rows = {(r["backend"], r["precision"], r["cameras"]): r for r in out["results"]}
    assert set(rows) == {
        ("torch", "fp32", 1),
        ("torch", "bf16", 1),
        ("torch", "fp32", 3),
        ("torch", "bf16", 3),
    }
    assert rows[("torch", "fp32", 3)]["reference"] is True  # one reference per batch size
    b1, b3 = rows[("torch", "bf16", 1)], rows[("torch", "bf16", 3)]
    assert b3["per_camera_frame_vs_batch1"] == pytest.approx(
        b3["latency_ms"]["p50"] / 3 / b1["latency_ms"]["p50"]
    )
    assert "per_camera_frame_vs_batch1" not in b1
    assert out["config"]["video"] == str(clip) and len(out["config"]["loadavg_start"]) == 3
    gflop = b1["gflop_per_frame"]
    assert 0 < gflop < 1  # the tiny model at 32x32
    assert b3["gflop_per_s"] == pytest.approx(gflop * 3 * 1000 / b3["latency_ms"]["p50"])
    peak = out["peaks"]["bf16"]["peak"]
    assert b3["fraction_of_peak"] == pytest.approx(b3["gflop_per_s"] / peak)
    table = markdown_table(out)
    assert "Matmul peak, GFLOP/s" in table and f"frames of {clip}" in table
    assert "Load average (1, 5, 15 min) at start" in table


def bench_peaks(threads: int | None) -> dict[str, dict[str, float]]:
    from rvm_ros.bench.peak import matmul_peaks

    return matmul_peaks(n=128, threads=threads, reps=2)


def test_matmul_peaks_cover_each_precision() -> None:
    peaks = bench_peaks(1)
    assert set(peaks) == {"fp32", "bf16", "int8"}
    assert peaks["fp32"]["torch"] > 0 and peaks["bf16"]["torch"] > 0
    for figs in peaks.values():
        assert figs["peak"] == max(v for k, v in figs.items() if k != "peak")
