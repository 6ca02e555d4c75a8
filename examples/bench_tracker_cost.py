#!/usr/bin/env python3
"""Per-frame cost of each tracker method over a long run (and whether it grows).

Frames: one sequence of the tracking benchmark (a real image under a smooth random camera
path, ``--height`` x ``--width``, default 640x480: the trackers work on the camera image),
played forward and backward in a loop for ``--frames`` frames, so the
motion never jumps. 64 points (``--points``) are queried on Shi-Tomasi corners of the
first frame; a point that is not visible for 30 frames is replaced by a new query (new
id) on the current frame, so the point count stays constant and the add / remove paths
run too. Each method runs alone in this process with torch and OpenCV on one thread
(``--threads``); the time of ``update`` alone is measured (no model step: the hybrid and
klt methods read the images; the feature readers get fixed random C=384 features of the
default network input's 8x8 grid (``--grid``) plus fresh noise per frame, their cost does
not depend on the content). The methods run in lockstep
(every method on the same frame, back to back), so the ratio of each method's time to
OpenCV Lucas-Kanade's on the same frames holds even on a loaded machine.

Printed: per window of ``--window`` frames the median and 95th percentile milliseconds,
and the process RSS at the end of the window.

    scripts/ros-env python examples/bench_tracker_cost.py --frames 10000 --height 480 --width 640
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace

import cv2
import numpy as np
import torch

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.evaluation.baselines import OpenCvLkBaseline
from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig
from rvm_ros.tracking.evaluation.sources import development_sources
from rvm_ros.tracking.evaluation.splits import make_sequence
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
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--grid", type=int, default=8, help="feature grid side (128 px / 16)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default="hybrid,klt,opencv_lk_fb,propagation")
    ap.add_argument(
        "--propagation-frames", type=int, default=1000, help="label propagation only this long"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    cfg = BenchmarkConfig(num_sequences=1, num_frames=120, height=args.height, width=args.width)
    seq = make_sequence(cfg, "plain", 0, development_sources())
    loop = np.concatenate([np.arange(120), np.arange(118, 0, -1)])  # ping-pong, no jump
    rng = np.random.default_rng(0)
    base_feats = rng.normal(size=(args.grid, args.grid, 384)).astype(np.float32)
    print(
        f"{args.frames} frames {args.width}x{args.height}, {args.points} points, "
        f"{args.threads} thread(s), OpenCV {cv2.__version__}, torch {torch.__version__}"
    )
    print(
        "| method | frames | median ms | p95 ms | min ms | median ratio to opencv_lk_fb | RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    methods = args.methods.split(",")
    grey0 = cv2.cvtColor(seq.frames[0], cv2.COLOR_RGB2GRAY)
    q = (cv2.goodFeaturesToTrack(grey0, args.points, 0.01, 6).reshape(-1, 2) + 0.5).astype(
        np.float32
    )
    runs = {m: _Run(m, q) for m in methods}
    for t in range(args.frames):
        frame = seq.frames[loop[t % loop.size]]
        feats = base_feats + rng.normal(0, 0.1, base_feats.shape).astype(np.float32)
        for m in methods:  # lockstep: every method on the same frame, back to back
            if m == "propagation" and t >= args.propagation_frames:
                continue
            runs[m].step(frame, feats)
        if (t + 1) % args.window == 0:
            ref = (
                np.array(runs["opencv_lk_fb"].times[-args.window :])
                if "opencv_lk_fb" in runs
                else None
            )
            for m in methods:
                if m == "propagation" and t >= args.propagation_frames:
                    continue
                w = np.array(runs[m].times[-args.window :])
                ratio = f"{np.median(w / ref):.2f}" if ref is not None else "n/a"
                print(
                    f"| {m} | {t + 1 - args.window}-{t + 1} | {np.median(w):.2f} | "
                    f"{np.percentile(w, 95):.2f} | {w.min():.2f} | {ratio} | {_rss_mb():.0f} |",
                    flush=True,
                )


class _Run:
    """One method's tracker, its lost-point replacement and its update times."""

    def __init__(self, method: str, q: np.ndarray) -> None:
        self.method = method
        if method == "opencv_lk_fb":
            self.tracker: object = OpenCvLkBaseline()
        else:
            self.tracker = create_tracker(replace(TrackerConfig(), method=method))
        self.tracker.add_queries(q, np.arange(q.shape[0]))  # type: ignore[attr-defined]
        self.next_id = q.shape[0]
        self.lost: dict[int, int] = {}
        self.times: list[float] = []

    def step(self, frame: np.ndarray, feats: np.ndarray) -> None:
        tracker: object = self.tracker
        t0 = time.perf_counter()
        state = tracker.update(frame, feats)  # type: ignore[attr-defined]
        self.times.append((time.perf_counter() - t0) * 1e3)
        if self.method == "opencv_lk_fb":
            # the baseline has no removal: when half its points are lost, start it afresh
            # on the current frame's corners so that it keeps doing the same work
            if state.visible.mean() < 0.5:
                grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                c = cv2.goodFeaturesToTrack(grey, state.ids.shape[0], 0.01, 6)
                if c is not None:
                    self.tracker = OpenCvLkBaseline()
                    new = c.reshape(-1, 2).astype(np.float32) + 0.5
                    self.tracker.add_queries(new, np.arange(new.shape[0]))
            return
        for i, v in zip(state.ids.tolist(), state.visible.tolist(), strict=True):
            self.lost[i] = 0 if v else self.lost.get(i, 0) + 1
        gone = [i for i, n in self.lost.items() if n >= 30]
        if not gone:
            return
        tracker.remove(gone)  # type: ignore[attr-defined]
        for i in gone:
            del self.lost[i]
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        mask = np.full(grey.shape, 255, np.uint8)
        for x, y in state.xy[state.visible].tolist():
            cv2.circle(mask, (int(x), int(y)), 6, 0, -1)
        c = cv2.goodFeaturesToTrack(grey, len(gone), 0.01, 6, mask=mask)
        if c is not None:
            new = c.reshape(-1, 2).astype(np.float32) + 0.5
            ids = np.arange(self.next_id, self.next_id + new.shape[0])
            self.next_id += new.shape[0]
            tracker.add_queries(new, ids)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
