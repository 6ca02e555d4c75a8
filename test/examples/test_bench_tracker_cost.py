"""examples/bench_tracker_cost.py (the tracker cost figures of docs/BENCHMARKS.md) runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_bench_tracker_cost_prints_one_row_per_method_and_window(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(repo_root / "examples" / "bench_tracker_cost.py"),
         "--frames", "20", "--window", "10", "--height", "64", "--width", "64", "--points", "8",
         "--propagation-frames", "20"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # method | frames | median ms | p95 ms | min ms | median ratio to opencv_lk_fb | RSS MB
    rows = re.findall(
        r"^\| (\w+) \| (\d+)-(\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \|$",
        result.stdout, re.MULTILINE)  # fmt: skip
    methods = [r[0] for r in rows]
    assert methods == ["hybrid", "klt", "opencv_lk_fb", "propagation"] * 2
    assert all(float(r[3]) > 0 for r in rows)
