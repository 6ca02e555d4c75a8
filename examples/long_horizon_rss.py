#!/usr/bin/env python3
"""Resident memory of a long recurrent run of the exported ONNX step (flat memory check).

A random-weight model (``--variant``, RVM-S by default) is exported and run through the
ONNX Runtime backend at a small input (``--size``, 64x64 by default, to keep 10,000 steps
short) for ``--steps`` steps of one camera from the zero state, on moving frames. The
process's resident memory (``/proc/self/status`` VmRSS) is printed after 100, 1,000,
5,000 and 10,000 steps (those not above ``--steps``), with whether every feature stayed
finite. The tiny-model version of this check runs in CI
(``test/runtime/test_long_horizon.py``).

    scripts/ros-env python examples/long_horizon_rss.py --variant S --size 64 --steps 10000
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence

import numpy as np

from rvm_ros.checkpoint import random_model
from rvm_ros.imaging.synthetic import synthetic_frames
from rvm_ros.runtime import create_encoder

CHECKPOINTS = (100, 1_000, 5_000, 10_000)


def rss_mb() -> float:
    """Resident memory of this process in MB (VmRSS)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", default="S")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    model = random_model(args.variant, with_decoder=False)
    video = synthetic_frames(50, 1, args.size, args.size)  # [T, 1, H, W, 3] uint8, cycled
    finite = True
    with tempfile.TemporaryDirectory(prefix="rvm_long_") as cache:
        encoder = create_encoder(
            model,
            backend="onnxruntime",
            height=args.size,
            width=args.size,
            max_batch=1,
            cache_dir=cache,
            threads=args.threads,
        )
        print(f"random:{args.variant} {args.size}x{args.size}, {encoder.info.backend}")
        for t in range(1, args.steps + 1):
            out = encoder.step(video[(t - 1) % len(video)], ["cam"])
            finite = finite and bool(np.isfinite(out).all())
            if t in CHECKPOINTS or t == args.steps:
                print(f"after {t:>6} steps: RSS {rss_mb():.1f} MB, features finite: {finite}")
        encoder.close()
    return 0 if finite else 1


if __name__ == "__main__":
    raise SystemExit(main())
