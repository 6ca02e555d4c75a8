"""The input-path benchmark example runs every case and reports sane numbers."""

from __future__ import annotations

import argparse
from types import ModuleType

import numpy as np
import pytest


def test_runs_every_case(bench_input_path: ModuleType) -> None:
    timings = bench_input_path.run((48, 64), (32, 32), iterations=3)
    cases = [(t.encoding, t.mode) for t in timings]
    assert cases == [
        (enc, mode)
        for enc in ("bgr8", "rgb8", "mono16", "jpeg")
        for mode in ("stretch", "letterbox", "center_crop")
    ]
    assert all(0 < t.p50_ms <= t.p99_ms for t in timings)
    with pytest.raises(ValueError, match="iterations must be >= 1, got 0"):
        bench_input_path.run((48, 64), (32, 32), iterations=0)


def test_sample_frame_and_size_parsing(bench_input_path: ModuleType) -> None:
    frame = bench_input_path.sample_frame(30, 40)
    assert frame.shape == (30, 40, 3) and frame.dtype == np.uint8
    assert frame.std() > 0  # a real picture or the gradient, not a blank frame
    assert bench_input_path._size("640x480") == (480, 640)
    with pytest.raises(argparse.ArgumentTypeError, match="expected WIDTHxHEIGHT, got '640'"):
        bench_input_path._size("640")


def test_main_prints_a_table(bench_input_path: ModuleType, capsys: pytest.CaptureFixture) -> None:
    assert bench_input_path.main(["--size", "64x48", "--model", "32x32", "--iterations", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "image 64x48 -> model 32x32, 2 runs per case"
    assert len(lines) == 2 + 12
    assert lines[2].split()[:2] == ["bgr8", "stretch"]
