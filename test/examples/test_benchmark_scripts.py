"""The scripts behind the figures of docs/BENCHMARKS.md run (tiny model; output shape only)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


def _run(repo_root: Path, script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(repo_root / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _rows(out: str) -> dict[str, list[float]]:
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and re.fullmatch(r"[\d.]+", cells[1]):
            rows[cells[0]] = [float(c) for c in cells[1:] if re.fullmatch(r"[\d.]+", c)]
    return rows


def test_bf16_autocast(repo_root: Path) -> None:
    out = _run(repo_root, "bench_bf16_autocast.py", "--variant", "tiny", "--size", "32",
               "--steps", "2", "--rounds", "1", "--warmup", "1", "--profile")  # fmt: skip
    rows = _rows(out)
    assert list(rows) == ["float32", "bf16 weights", "float32 + autocast(bf16)"]
    assert all(len(v) == 2 and min(v) > 0 for v in rows.values())
    assert re.search(r"aten::copy_ is \d+% of self CPU time", out)


def test_long_horizon_rss(repo_root: Path) -> None:
    out = _run(repo_root, "long_horizon_rss.py", "--variant", "tiny", "--size", "32",
               "--steps", "120")  # fmt: skip
    lines = re.findall(r"after +(\d+) steps: RSS ([\d.]+) MB, features finite: True", out)
    assert [int(n) for n, _ in lines] == [100, 120]


@pytest.mark.slow
def test_onnx_fusions(repo_root: Path) -> None:
    out = _run(repo_root, "bench_onnx_fusions.py", "--variant", "tiny", "--size", "32",
               "--steps", "2", "--rounds", "1", "--warmup", "1")  # fmt: skip
    assert list(_rows(out)) == [
        "torch eager",
        "exported graph",
        "+ fused attention",
        "+ FastGelu (shipped)",
        "+ SkipLayerNormalization",
    ]
    assert re.search(r"SkipLayerNormalization nodes: [1-9]", out)
