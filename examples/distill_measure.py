#!/usr/bin/env python3
"""The measurements behind the distillation choices in docs/TRAINING.md ("Distillation").

``cost``: step time of the shipped model and candidate students (random weights, batch 1,
128x128, one thread, rounds alternated, median). ``init``: feature cosine to the teacher
of a `student192` initialised from different teacher blocks, on 12 development clips of 8
frames (bikes.mp4, stills, procedural; before any training). ``cache``: teacher targets
on the fly vs computed-and-stored vs read back from a :class:`TeacherCache`, per clip.

    scripts/ros-env python examples/distill_measure.py cost
    scripts/ros-env python examples/distill_measure.py init
    scripts/ros-env python examples/distill_measure.py cache --folder /tmp/cache
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from rvm_ros.checkpoint import load_model
from rvm_ros.model import RVM, RVMConfig
from rvm_ros.training.data import ClipDataset
from rvm_ros.training.distill import TeacherTargets, stream_data
from rvm_ros.training.distill_config import load_distill_config
from rvm_ros.training.distill_objective import stream
from rvm_ros.training.trainer import init_weights

CONFIG = "config/distill_default.yaml"


def _sized(dim: int, enc: int, core: int, heads: int) -> RVMConfig:
    return dataclasses.replace(
        RVMConfig.from_variant("student192"),
        dim=dim, enc_layers=enc, core_layers=core, enc_heads=heads, core_heads=heads,
        enc_mlp=4 * dim, core_mlp=4 * dim, variant="custom",
    )  # fmt: skip


def cost(rounds: int) -> None:
    """Median step time of each candidate, alternated, relative to the shipped model."""
    candidates = {
        "teacher": load_model("builtin:default").config,
        "student192": RVMConfig.from_variant("student192"),
        "student128": RVMConfig.from_variant("student128"),
        "d192 3+1": _sized(192, 3, 1, 3),
        "d128 3+1": _sized(128, 3, 1, 4),
        "d160 3+1": _sized(160, 3, 1, 4),
    }
    models = {k: RVM(v, with_decoder=False).eval() for k, v in candidates.items()}
    frame = torch.randint(0, 255, (1, 128, 128, 3), dtype=torch.uint8)
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        for _ in range(rounds):
            for name, model in models.items():
                state = model.init_state(1, 128, 128)
                t0 = time.perf_counter()
                model.step(frame, state)
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["teacher"])
    for name, model in models.items():
        ms = statistics.median(times[name])
        params = sum(p.numel() for p in model.parameters())
        print(f"{name:12s} {1e3 * ms:7.2f} ms {ms / base:5.2f}x {params / 1e6:5.2f} M")


def _dev_frames(count: int) -> torch.Tensor:
    cfg = load_distill_config(CONFIG, ["data.workers=0"])
    dataset = ClipDataset(stream_data(cfg.data), 12345)
    return torch.from_numpy(np.stack([dataset[i].source for i in range(count)]))


def init() -> None:
    """Cosine to the teacher of student192 started from different teacher blocks."""
    teacher = load_model("builtin:default")
    frames = _dev_frames(12)
    choices = {  # (encoder blocks, core blocks) of the teacher copied
        "first 2 + core 0": ((0, 1), (0,)),
        "spaced 0, 5 + core 0": ((0, 5), (0,)),
        "last 2 + core 1": ((4, 5), (1,)),
        "first 2 + core 1": ((0, 1), (1,)),
    }
    source = teacher.state_dict()
    with torch.no_grad():
        target, _ = stream(teacher, frames, False)
        for name, (enc, core) in {"random": ((), ()), **choices}.items():
            student = RVM(RVMConfig.from_variant("student192"), with_decoder=False)
            init_weights(student, 0)
            if enc:
                for key, param in student.state_dict().items():
                    parts = key.split(".")
                    if key.startswith("encoder.layers."):
                        parts[2] = str(enc[int(parts[2])])
                    elif key.startswith("core.transformer.blocks."):
                        parts[3] = str(core[int(parts[3])])
                    param.copy_(source[".".join(parts)])
            feats, _ = stream(student.eval(), frames, False)
            cos = F.cosine_similarity(feats, target, dim=-1)
            print(f"{name:22s} {float(cos.mean()):.4f}")


def cache(folder: str, rounds: int) -> None:
    """Per-clip cost: teacher on the fly, miss (compute + store), hit (read back)."""
    cfg = load_distill_config(CONFIG, [f"teacher_cache={folder}", "cache_clips=4096"])
    targets = TeacherTargets(load_model("builtin:default"), cfg, (8, 8))
    frames = _dev_frames(16)
    fly, miss, hit = [], [], []
    for r in range(rounds):
        indices = list(range(16 * r, 16 * r + 16))
        for out, call in (
            (fly, lambda: targets.compute(frames)),
            (miss, lambda: targets(frames, indices)),  # noqa: B023 - called at once
            (hit, lambda: targets(frames, indices)),  # noqa: B023
        ):
            t0 = time.perf_counter()
            call()
            out.append((time.perf_counter() - t0) / 16)
    result = {
        k: 1e3 * statistics.median(v) for k, v in (("fly", fly), ("miss", miss), ("hit", hit))
    }
    print(json.dumps({"ms_per_clip": result, "load": os.getloadavg()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("cost", "init", "cache"))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--folder", default="/tmp/rvm_distill_cache_measure")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "cost":
        cost(args.rounds)
    elif args.what == "init":
        init()
    else:
        cache(args.folder, min(args.rounds, 5))


if __name__ == "__main__":
    main()
