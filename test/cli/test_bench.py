"""`rvm-ros bench` smoke test on the tiny model: JSON shape and markdown, not timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rvm_ros.cli import main


def test_bench_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, md = tmp_path / "bench.json", tmp_path / "BENCH.md"
    rc = main(
        [
            "bench",
            "--random-variant",
            "tiny",
            "--backend",
            "torch",
            "onnxruntime",
            "--precision",
            "fp32",
            "int8",
            "--height",
            "32",
            "--width",
            "48",
            "--frames",
            "3",
            "--warmup",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json",
            str(out),
            "--markdown",
            str(md),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "skipping torch/int8: not supported" in captured.err
    report = json.loads(out.read_text())
    assert set(report) >= {"machine", "results"}
    rows = {(r["backend"], r["precision"]): r for r in report["results"]}
    assert set(rows) == {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    for r in rows.values():
        assert set(r) >= {
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
        assert set(r["latency_ms"]) == {"p50", "p90", "p99"}
        assert (r["height"], r["width"], r["cameras"]) == (32, 48, 1)
    assert rows[("torch", "fp32")]["speedup_vs_torch_eager_fp32"] == pytest.approx(1.0)
    text = md.read_text()
    assert "| onnxruntime | int8 | cpu |" in text and "Command: `rvm-ros" in text
    assert "| backend | precision |" in captured.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--random-variant", "XXL"], "--random-variant 'XXL' is not one of"),
        (
            ["--random-variant", "tiny", "--height", "50"],
            "--height must be a positive multiple of 16",
        ),
        (["--random-variant", "tiny", "--frames", "0"], "--frames must be >= 1, got 0"),
        (
            ["--random-variant", "tiny", "--backend", "onnxruntime", "--precision", "bf16"],
            "no backend/precision combination",
        ),
    ],
)
def test_bench_bad_arguments(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *args]) == 2
    assert message in capsys.readouterr().err


def test_bench_unavailable_device_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    args = ["--random-variant", "tiny", "--device", "cuda", "--frames", "1", "--in-process"]
    assert main(["bench", *args, "--height", "32", "--width", "32"]) == 2
    assert "device cuda requested but torch sees no CUDA device" in capsys.readouterr().err
