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
from typing import TYPE_CHECKING, TypedDict

import cv2
import numpy as np

if TYPE_CHECKING:
    from rvm_ros.replay.encoders import Encoder
    from rvm_ros.replay.records import BagSection
    from rvm_ros.replay.settings import ReplaySettings


class ThroughputResult(TypedDict):
    """One measurement: the setup, both throughputs, their ratio and the replay's time split."""

    checkpoint: str
    model_id: str
    backend: str
    precision: str
    size: list[int]
    threads: int
    frames: int
    repeats: int
    storage: str
    compressed: bool
    tracking: bool
    bare_fps: float
    replay_fps: float
    ratio: float
    replay_wall_s: float
    model_step_s: float
    decode_s: float
    write_s: float
    process_s: float
    outside_step_fraction: float


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
) -> ThroughputResult:
    """Measure bare-step and replay throughput on the same frames (see module docstring).

    Returns:
        A dict with ``bare_fps``, ``replay_fps``, ``ratio`` and the replay's time split.
    """
    import torch

    from rvm_ros.bags.make_bag import make_bag
    from rvm_ros.imaging.video import find_sample_video
    from rvm_ros.runtime import create_encoder

    torch.set_num_threads(threads)
    height, width = size
    video = find_sample_video("bikes.mp4")
    with tempfile.TemporaryDirectory(prefix="rvm_tp_") as tmp:
        bag = Path(tmp) / "bag"
        make_bag([video], bag, storage, compressed, max_frames=frames, width=640)
        images = _network_frames(video, frames, height, width)
        encoder = create_encoder(checkpoint, backend, precision, None, height, width, 1)
        for img in images[:warmup]:
            encoder.step(img, ["bench"])
        info = encoder.info.as_dict()
        settings = _settings(checkpoint, backend, precision, size, threads, tracking)
        bare_s, section = _alternate(encoder, images, bag, Path(tmp), settings, repeats)
        encoder.close()
    processed = sum(c["processed"] for c in section["cameras"].values())
    replay_fps = processed / section["wall_s"]
    bare_fps = len(images) / bare_s
    timing = section["timing_s"]
    return {
        "checkpoint": checkpoint,
        "model_id": str(info["model_id"]),
        "backend": str(info["backend"]),
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


def _network_frames(video: Path, frames: int, height: int, width: int) -> list[np.ndarray]:
    """The bag's frames, resized to the network input once (outside the timed loop)."""
    from rvm_ros.bags.make_bag import read_timed_frames

    return [
        np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)[None])
        for _, rgb in read_timed_frames(video, frames, 640)
    ]


def _settings(
    checkpoint: str,
    backend: str,
    precision: str,
    size: tuple[int, int],
    threads: int,
    tracking: bool,
) -> ReplaySettings:
    """The replay of the same model, backend, precision and threads (no plots, no bar)."""
    from rvm_ros.replay.settings import ReplaySettings

    return ReplaySettings(
        params={
            "model_height": size[0],
            "model_width": size[1],
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


def _alternate(
    encoder: Encoder,
    images: list[np.ndarray],
    bag: Path,
    tmp: Path,
    settings: ReplaySettings,
    repeats: int,
) -> tuple[float, BagSection]:
    """Bare steps and replays, alternated ``repeats`` times: the best time of each."""
    from rvm_ros.replay.workers import replay

    # Alternate bare and replay runs; the best of each is least disturbed by other load.
    bare_s = math.inf
    section: BagSection = {}
    for r in range(repeats):
        encoder.reset()
        t0 = time.perf_counter()
        for img in images:
            encoder.step(img, ["bench"])
        bare_s = min(bare_s, time.perf_counter() - t0)
        outcome = replay([bag], tmp / f"out{r}", settings)
        run = outcome.report["bags"][0]
        if not section or run["wall_s"] < section["wall_s"]:
            section = run
    return bare_s, section


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
