#!/usr/bin/env python3
"""Time ``PointTracker.update`` per frame for a few grid sizes and point counts.

The features are a fixed random background (``[h, w, C]``) plus fresh noise per frame,
so every frame is a plausible "same scene, new sensor noise" feature grid; the points
sit on a regular grid. The tracker is first run until its context is full
(``n_context`` frames), then ``--frames`` updates are timed and the median reported.

``--baseline PATH`` also times another implementation of the tracker (a copy of an older
``rvm_ros/tracking.py``, e.g. ``git show HEAD~1:rvm_ros/tracking.py > /tmp/old.py``) on
the same frames in the same run, and reports the largest position / confidence
difference and whether visibility decisions agree.

    scripts/ros-env python examples/bench_tracker.py --baseline /tmp/old.py
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch

from rvm_ros import tracking

CASES: tuple[tuple[int, int], ...] = ((16, 16), (16, 64), (16, 256), (32, 16), (32, 64), (32, 256))


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_tracking", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _frames(grid: int, channels: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    background = rng.standard_normal((grid, grid, channels)).astype(np.float32)
    return [
        background + 0.5 * rng.standard_normal((grid, grid, channels)).astype(np.float32)
        for _ in range(count)
    ]


def _queries(grid: int, points: int) -> np.ndarray:
    side = int(np.ceil(np.sqrt(points)))
    coords = (np.arange(side) + 0.5) * grid / side
    xy = np.stack(np.meshgrid(coords, coords), axis=-1).reshape(-1, 2)[:points]
    return xy.astype(np.float32)


def run(module: Any, frames: list[np.ndarray], queries: np.ndarray, warm: int) -> tuple:
    """Returns (median ms per timed update, last state)."""
    tracker = module.PointTracker(module.TrackerConfig())
    tracker.add_queries(queries, np.arange(len(queries)))
    for f in frames[:warm]:
        tracker.update(f)
    times = []
    for f in frames[warm:]:
        t0 = time.perf_counter()
        state = tracker.update(f)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, state


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=384, help="feature channels C")
    parser.add_argument("--frames", type=int, default=10, help="timed updates per case")
    parser.add_argument("--baseline", help="path of another tracking.py to compare with")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--cases",
        default=",".join(f"{g}x{p}" for g, p in CASES),
        help="comma-separated GRIDxPOINTS cases, e.g. 16x64,32x256",
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    baseline = _load(args.baseline) if args.baseline else None
    n_context = tracking.TrackerConfig().n_context
    warm = n_context + 1  # context full: the query frame plus n_context recent frames
    print(
        f"C={args.channels}, n_context={n_context}, {args.frames} timed frames, "
        f"torch threads {torch.get_num_threads()}"
    )
    header = f"{'grid':>6} {'points':>6} {'new ms':>8}"
    if baseline is not None:
        header += f" {'old ms':>8} {'speedup':>8} {'max |dxy|':>10} {'max |dconf|':>11} vis"
    print(header)
    for case in args.cases.split(","):
        grid, points = (int(v) for v in case.lower().split("x"))
        frames = _frames(grid, args.channels, warm + args.frames, seed=grid * 1000 + points)
        queries = _queries(grid, points)
        new_ms, new_state = run(tracking, frames, queries, warm)
        line = f"{grid:>3}x{grid:<2} {points:>6} {new_ms:>8.2f}"
        if baseline is not None:
            old_ms, old_state = run(baseline, frames, queries, warm)
            dxy = float(np.abs(new_state.xy - old_state.xy).max())
            dconf = float(np.abs(new_state.confidence - old_state.confidence).max())
            same = bool((new_state.visible == old_state.visible).all())
            line += f" {old_ms:>8.2f} {old_ms / new_ms:>7.1f}x {dxy:>10.2e} {dconf:>11.2e} "
            line += "same" if same else "DIFFERENT"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
