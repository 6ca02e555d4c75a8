#!/usr/bin/env python3
"""Per-frame cost of each tracker method over a long run (and whether it grows).

Frames: one sequence of the tracking benchmark (a real image under a smooth random camera
path, 256x256), played forward and backward in a loop for ``--frames`` frames, so the
motion never jumps. 64 points (``--points``) are queried on Shi-Tomasi corners of the
first frame; a point that is not visible for 30 frames is replaced by a new query (new
id) on the current frame, so the point count stays constant and the add / remove paths
run too. Each method runs alone in this process with torch and OpenCV on one thread
(``--threads``); the time of ``update`` alone is measured (no model step: the hybrid and
klt methods read the images; ``propagation`` gets fixed random C=384 features plus fresh
noise per frame, its cost does not depend on their content).

Printed: per window of ``--window`` frames the median and 95th percentile milliseconds,
and the process RSS at the end of the window.

    scripts/ros-env python examples/bench_tracker_cost.py --frames 10000
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace

import cv2
import numpy as np
import torch

from rvm_ros.tracking.baselines import OpenCvLkBaseline
from rvm_ros.tracking.benchmark import BenchmarkConfig, development_sources, make_sequence
from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.factory import create_tracker


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default="hybrid,klt,opencv_lk_fb,propagation")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    cfg = BenchmarkConfig(num_sequences=1, num_frames=120, height=args.size, width=args.size)
    seq = make_sequence(cfg, "plain", 0, development_sources())
    loop = np.concatenate([np.arange(120), np.arange(118, 0, -1)])  # ping-pong, no jump
    rng = np.random.default_rng(0)
    grid = args.size // 16
    base_feats = rng.normal(size=(grid, grid, 384)).astype(np.float32)
    print(
        f"{args.frames} frames {args.size}x{args.size}, {args.points} points, "
        f"{args.threads} thread(s), OpenCV {cv2.__version__}, torch {torch.__version__}"
    )
    print("| method | frames | median ms | p95 ms | RSS MB |")
    print("|---|---|---|---|---|")
    for method in args.methods.split(","):
        frames = args.frames if method != "propagation" else min(args.frames, 2 * args.window)
        if method == "opencv_lk_fb":
            tracker = OpenCvLkBaseline()
        else:
            tracker = create_tracker(replace(TrackerConfig(), method=method))
        grey0 = cv2.cvtColor(seq.frames[0], cv2.COLOR_RGB2GRAY)
        q = cv2.goodFeaturesToTrack(grey0, args.points, 0.01, 6).reshape(-1, 2) + 0.5
        next_id = q.shape[0]
        tracker.add_queries(q.astype(np.float32), np.arange(q.shape[0]))
        lost: dict[int, int] = {}
        times: list[float] = []
        for t in range(frames):
            frame = seq.frames[loop[t % loop.size]]
            feats = base_feats + rng.normal(0, 0.1, base_feats.shape).astype(np.float32)
            t0 = time.perf_counter()
            state = tracker.update(frame, feats)
            times.append((time.perf_counter() - t0) * 1e3)
            if method == "opencv_lk_fb":
                pass  # the baseline keeps its lost points (it has no removal)
            else:
                for i, v in zip(state.ids.tolist(), state.visible.tolist(), strict=True):
                    lost[i] = 0 if v else lost.get(i, 0) + 1
                gone = [i for i, n in lost.items() if n >= 30]
                if gone:
                    tracker.remove(gone)
                    for i in gone:
                        del lost[i]
                    visible_xy = state.xy[state.visible]
                    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                    mask = np.full(grey.shape, 255, np.uint8)
                    for x, y in visible_xy.tolist():
                        cv2.circle(mask, (int(x), int(y)), 6, 0, -1)
                    c = cv2.goodFeaturesToTrack(grey, len(gone), 0.01, 6, mask=mask)
                    if c is not None:
                        new = c.reshape(-1, 2).astype(np.float32) + 0.5
                        ids = np.arange(next_id, next_id + new.shape[0])
                        next_id += new.shape[0]
                        tracker.add_queries(new, ids)
            if (t + 1) % args.window == 0:
                w = np.array(times[-args.window :])
                print(
                    f"| {method} | {t + 1 - args.window}-{t + 1} | {np.median(w):.2f} | "
                    f"{np.percentile(w, 95):.2f} | {_rss_mb():.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
