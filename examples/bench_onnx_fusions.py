#!/usr/bin/env python3
"""Process CPU time per RVM step on one thread: torch eager against the exported ONNX graph
and each CPU graph optimisation of ``rvm_ros/runtime/onnx/optimize.py`` added in turn.

Rows: ``torch eager``; ``exported graph`` (no rewrite); ``+ fused attention``
(``fuse_attention``: one ``MultiHeadAttention`` node per block); ``+ FastGelu`` (ONNX
Runtime's bias + GELU fusion, the shipped optimisation); ``+ SkipLayerNormalization``
(ONNX Runtime's residual + LayerNorm fusion, which the shipped optimisation leaves out
because it measured slower). Every configuration runs one thread, alternately in one
process (``--rounds`` rounds of ``--steps`` steps each, after a warm-up), timed with
``time.process_time`` (CPU time of this process, less sensitive to other load than wall
time); the table shows the median over rounds in ms per step. Random weights.

    scripts/ros-env python examples/bench_onnx_fusions.py --variant S --size 256
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rvm_ros.checkpoint import random_model
from rvm_ros.runtime.backends.onnxruntime import OrtEncoder
from rvm_ros.runtime.backends.torch import TorchEncoder
from rvm_ros.runtime.onnx.export import export_onnx
from rvm_ros.runtime.onnx.optimize import fuse_attention, optimize_for_ort


def _with_skip_layer_norm(src: Path, dst: Path) -> None:
    """The shipped optimisation plus ONNX Runtime's SkipLayerNormalization fusion."""
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.onnx_model_bert import BertOnnxModel

    model = onnx.load(str(src))
    fuse_attention(model)
    options = FusionOptions("bert")
    options.enable_attention = False
    options.enable_embed_layer_norm = False
    bert = BertOnnxModel(model, num_heads=0, hidden_size=0)
    logging.getLogger().setLevel(logging.ERROR)  # the optimizer logs its progress at root
    bert.optimize(options, add_dynamic_axes=False)
    bert.topological_sort()
    fused = bert.get_fused_operator_statistics().get("SkipLayerNormalization", 0)
    print(f"SkipLayerNormalization nodes: {fused}")
    onnx.save(bert.model, str(dst))


def _files(model: torch.nn.Module, size: int, folder: Path) -> dict[str, Path]:
    exported = export_onnx(model, folder / "step.onnx", size, size)  # type: ignore[arg-type]
    attention = folder / "attention.onnx"
    optimize_for_ort(exported, attention, ort_fusions=False)
    gelu = folder / "gelu.onnx"
    optimize_for_ort(exported, gelu, ort_fusions=True)
    skip_ln = folder / "skip_ln.onnx"
    _with_skip_layer_norm(exported, skip_ln)
    return {
        "exported graph": exported,
        "+ fused attention": attention,
        "+ FastGelu (shipped)": gelu,
        "+ SkipLayerNormalization": skip_ln,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", default="S", help="random:<variant> model (S, Ti, tiny, ...)")
    p.add_argument("--size", type=int, default=256, help="square input side")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = random_model(args.variant, with_decoder=False)
    info = dict(
        model_id=model.model_id,
        dim=model.config.dim,
        patch_size=model.config.patch_size,
        height=args.size,
        width=args.size,
    )
    frames = np.random.default_rng(0).integers(0, 256, (1, args.size, args.size, 3), np.uint8)
    with tempfile.TemporaryDirectory(prefix="rvm_fusions_") as tmp:
        runners: dict[str, Any] = {
            "torch eager": TorchEncoder(
                model, "fp32", "cpu", height=args.size, width=args.size, max_batch=1
            )
        }
        for name, path in _files(model, args.size, Path(tmp)).items():
            runners[name] = OrtEncoder(path, **info, max_batch=1, threads=1, optimize=False)
        times: dict[str, list[float]] = {name: [] for name in runners}
        steps: dict[str, Callable[[], Any]] = {
            name: (lambda r=r: r.step(frames, ["cam"])) for name, r in runners.items()
        }
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        for _ in range(args.rounds):
            for name, step in steps.items():  # alternate the configurations every round
                t0 = time.process_time()
                for _ in range(args.steps):
                    step()
                times[name].append((time.process_time() - t0) / args.steps * 1e3)
    print(f"random:{args.variant} {args.size}x{args.size}, 1 thread, process CPU ms per step")
    print("| configuration | ms per step (median of rounds) | rounds |")
    print("|---|---:|---|")
    for name, values in times.items():
        rounds = " / ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {statistics.median(values):.1f} | {rounds} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
