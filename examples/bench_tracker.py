#!/usr/bin/env python3
"""Time ``PointTracker.update`` per frame for a few grid sizes and point counts.

The features are a fixed random background (``[h, w, C]``) plus fresh noise per frame,
so every frame is a plausible "same scene, new sensor noise" feature grid; the points
sit on a regular grid. The tracker is first run until its context is full
(``n_context`` frames), then ``--frames`` updates are timed and the median reported.
``--threads 1`` (with ``OPENBLAS_NUM_THREADS=1`` for a numpy baseline) gives the most
repeatable numbers on a shared machine.

``--baseline PATH`` also times another implementation of the tracker (a copy of an older
``rvm_ros/tracking/label_propagation.py``, e.g.
``git show HEAD~1:rvm_ros/tracking/label_propagation.py > /tmp/old.py``) on the same frames in the
same run, and reports the largest position / confidence difference and whether visibility
decisions agree.

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

from rvm_ros.tracking import label_propagation as tracking

CASES: tuple[tuple[int, int], ...] = ((16, 16), (16, 64), (16, 256), (32, 16), (32, 64), (32, 256))


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_tracking", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _model_step(checkpoint: str) -> Any:
    import rvm_ros

    model = rvm_ros.load_model(checkpoint)
    frame = torch.zeros((1, 256, 256, 3), dtype=torch.uint8)
    state = model.init_state(1, 256, 256)

    def step() -> None:
        with torch.no_grad():
            model.step(frame, state)

    return step


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


def run(
    modules: Sequence[Any],
    frames: list[np.ndarray],
    queries: np.ndarray,
    warm: int,
    model_step: Any = None,
) -> list[tuple[float, Any]]:
    """Run one tracker per module on the same frames in lockstep (each timed update of
    one is followed by the same update of the next, so load changes on a shared machine
    hit all alike). ``model_step()``, when given, runs (untimed) before every timed
    update, as the model step does in the pipeline. Returns per module (median ms per
    timed update, last state)."""
    trackers = []
    for module in modules:
        tracker = module.PointTracker(module.TrackerConfig())
        tracker.add_queries(queries, np.arange(len(queries)))
        trackers.append(tracker)
    for f in frames[:warm]:
        for tracker in trackers:
            tracker.update(f)
    times: list[list[float]] = [[] for _ in trackers]
    states: list[Any] = [None] * len(trackers)
    for f in frames[warm:]:
        for j, tracker in enumerate(trackers):
            if model_step is not None:
                model_step()
            t0 = time.perf_counter()
            states[j] = tracker.update(f)
            times[j].append(time.perf_counter() - t0)
    return [(statistics.median(t) * 1e3, st) for t, st in zip(times, states, strict=True)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=384, help="feature channels C")
    parser.add_argument("--frames", type=int, default=20, help="timed updates per case")
    parser.add_argument("--baseline", help="path of another tracking.py to compare with")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--model",
        help="run this model's step (e.g. random:tiny) on a 256x256 frame before every "
        "update, untimed, as in the pipeline (its torch thread pool is then busy/spinning)",
    )
    parser.add_argument(
        "--cases",
        default=",".join(f"{g}x{p}" for g, p in CASES),
        help="comma-separated GRIDxPOINTS cases, e.g. 16x64,32x256",
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    baseline = _load(args.baseline) if args.baseline else None
    model_step = _model_step(args.model) if args.model else None
    n_context = tracking.TrackerConfig().n_context
    warm = n_context + 1  # context full: the query frame plus n_context recent frames
    print(
        f"C={args.channels}, n_context={n_context}, {args.frames} timed frames, "
        f"torch threads {torch.get_num_threads()}"
        + (f", model step {args.model} before each update" if args.model else "")
    )
    header = f"{'grid':>6} {'points':>6} {'new ms':>8}"
    if baseline is not None:
        header += f" {'old ms':>8} {'speedup':>8} {'max |dxy|':>10} {'max |dconf|':>11} vis"
    print(header)
    for case in args.cases.split(","):
        grid, points = (int(v) for v in case.lower().split("x"))
        frames = _frames(grid, args.channels, warm + args.frames, seed=grid * 1000 + points)
        queries = _queries(grid, points)
        modules = [tracking] if baseline is None else [tracking, baseline]
        results = run(modules, frames, queries, warm, model_step)
        new_ms, new_state = results[0]
        line = f"{grid:>3}x{grid:<2} {points:>6} {new_ms:>8.2f}"
        if baseline is not None:
            old_ms, old_state = results[1]
            dxy = float(np.abs(new_state.xy - old_state.xy).max())
            dconf = float(np.abs(new_state.confidence - old_state.confidence).max())
            same = bool((new_state.visible == old_state.visible).all())
            line += f" {old_ms:>8.2f} {old_ms / new_ms:>7.1f}x {dxy:>10.2e} {dconf:>11.2e} "
            line += "same" if same else "DIFFERENT"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
