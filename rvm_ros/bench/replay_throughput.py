"""Replay throughput against the bare model step (the docs/BENCHMARKS.md figures).

``python -m rvm_ros.bench.replay_throughput --checkpoint random:S --size 256 256`` builds a bag
from ``bikes.mp4``, times the bare encoder step on the same (pre-resized) frames, then
replays the bag with the same backend, precision and threads, and prints both
throughputs, their ratio and where the replay's time went.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def measure(
    checkpoint: str = "random:tiny",
    backend: str = "torch",
    precision: str = "fp32",
    size: tuple[int, int] = (256, 256),
    frames: int = 60,
    threads: int = 1,
    storage: str = "mcap",
    compressed: bool = False,
    tracking: bool = False,
    warmup: int = 3,
    repeats: int = 3,
) -> dict[str, Any]:
    """Measure bare-step and replay throughput on the same frames (see module docstring).

    Returns:
        A dict with ``bare_fps``, ``replay_fps``, ``ratio`` and the replay's time split.
    """
    import torch

    from rvm_ros.bags.make_bag import make_bag, read_timed_frames
    from rvm_ros.imaging.sample_videos import find_sample_video
    from rvm_ros.replay.settings import ReplaySettings
    from rvm_ros.replay.workers import replay
    from rvm_ros.runtime import create_encoder

    torch.set_num_threads(threads)
    height, width = size
    video = find_sample_video("bikes.mp4")
    with tempfile.TemporaryDirectory(prefix="rvm_tp_") as tmp:
        bag = Path(tmp) / "bag"
        make_bag([video], bag, storage, compressed, max_frames=frames, width=640)
        # Bare model step: the same frames, resized once outside the timed loop.
        images = [
            np.ascontiguousarray(
                cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)[None]
            )
            for _, rgb in read_timed_frames(video, frames, 640)
        ]
        encoder = create_encoder(checkpoint, backend, precision, None, height, width, 1)
        for img in images[:warmup]:
            encoder.step(img, ["bench"])
        info = encoder.info.as_dict()
        settings = ReplaySettings(
            params={
                "model_height": height,
                "model_width": width,
                "tracking": tracking,
                "track_grid": 8 if tracking else 0,
            },
            checkpoint=checkpoint,
            backend=backend,
            precision=precision,
            threads=threads,
            visuals=False,
            progress=False,
        )
        # Alternate bare and replay runs; the best of each is least disturbed by other load.
        bare_s = math.inf
        section: dict[str, Any] = {}
        for r in range(repeats):
            encoder.reset()
            t0 = time.perf_counter()
            for img in images:
                encoder.step(img, ["bench"])
            bare_s = min(bare_s, time.perf_counter() - t0)
            outcome = replay([bag], Path(tmp) / f"out{r}", settings)
            run = outcome.report["bags"][0]
            if not section or run["wall_s"] < section["wall_s"]:
                section = run
        encoder.close()
    processed = sum(c["processed"] for c in section["cameras"].values())
    replay_fps = processed / section["wall_s"]
    bare_fps = len(images) / bare_s
    timing = section["timing_s"]
    return {
        "checkpoint": checkpoint,
        "model_id": info["model_id"],
        "backend": info["backend"],
        "precision": precision,
        "size": [height, width],
        "threads": threads,
        "frames": processed,
        "repeats": repeats,
        "storage": storage,
        "compressed": compressed,
        "tracking": tracking,
        "bare_fps": bare_fps,
        "replay_fps": replay_fps,
        "ratio": replay_fps / bare_fps,
        "replay_wall_s": section["wall_s"],
        "model_step_s": timing["step_s"],
        "decode_s": timing["decode_s"],
        "write_s": timing["write_s"],
        "process_s": timing["process_s"],
        "outside_step_fraction": 1.0 - timing["step_s"] / section["wall_s"],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: print one JSON line per measurement."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", default="random:tiny")
    p.add_argument("--backend", default="torch")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"))
    p.add_argument("--compressed", action="store_true")
    p.add_argument("--tracking", action="store_true")
    p.add_argument("--repeats", type=int, default=3, help="best of N alternating runs")
    args = p.parse_args(argv)
    result = measure(
        args.checkpoint,
        args.backend,
        args.precision,
        (args.size[0], args.size[1]),
        args.frames,
        args.threads,
        args.storage,
        args.compressed,
        args.tracking,
        repeats=args.repeats,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
