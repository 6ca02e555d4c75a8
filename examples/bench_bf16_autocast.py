#!/usr/bin/env python3
"""bfloat16 weights against ``torch.autocast(bfloat16)`` for the RVM step on the CPU.

Three configurations of the same random-weight model run alternately in one process on
one thread (``--rounds`` rounds of ``--steps`` steps after a warm-up): float32, the
model's weights cast to bfloat16 (what ``backend=torch precision=bf16`` runs), and the
float32 model under ``torch.autocast("cpu", dtype=torch.bfloat16)``. Reported: the median
over rounds of the wall time per step in ms and the process CPU time per step.
``--profile`` also prints the share of ``aten::copy_`` in the bf16 path's CPU time
(``torch.profiler``), the cost of the float32 LayerNorm / softmax casts.

    scripts/ros-env python examples/bench_bf16_autocast.py --variant S --size 256
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from rvm_ros.checkpoint import random_model


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", default="S")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--profile", action="store_true", help="aten::copy_ share of the bf16 path")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    fp32 = random_model(args.variant, with_decoder=False).eval()
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    frames = torch.randint(0, 256, (1, args.size, args.size, 3), dtype=torch.uint8)

    def runner(model: torch.nn.Module, autocast: bool) -> Callable[[], None]:
        dtype = next(model.parameters()).dtype
        state = model.init_state(1, args.size, args.size, dtype=dtype)  # type: ignore[operator]

        def step() -> None:
            nonlocal state
            ctx = (
                torch.autocast("cpu", dtype=torch.bfloat16)
                if autocast
                else contextlib.nullcontext()
            )
            with torch.inference_mode(), ctx:
                _, state = model.step(frames, state)  # type: ignore[operator]

        return step

    steps = {
        "float32": runner(fp32, autocast=False),
        "bf16 weights": runner(bf16, autocast=False),
        "float32 + autocast(bf16)": runner(fp32, autocast=True),
    }
    wall: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    for _ in range(args.rounds):
        for name, step in steps.items():
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                step()
            wall[name].append((time.perf_counter() - w0) / args.steps * 1e3)
            cpu[name].append((time.process_time() - c0) / args.steps * 1e3)
    print(f"random:{args.variant} {args.size}x{args.size}, 1 thread")
    print("| configuration | wall ms per step (median) | CPU ms per step (median) |")
    print("|---|---:|---:|")
    for name in steps:
        print(
            f"| {name} | {statistics.median(wall[name]):.1f} | {statistics.median(cpu[name]):.1f} |"
        )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                steps["bf16 weights"]()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        copies = sum(e.self_cpu_time_total for e in events if e.key == "aten::copy_")
        print(f"bf16 weights: aten::copy_ is {100 * copies / max(total, 1):.0f}% of self CPU time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
