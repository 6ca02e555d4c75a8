"""Comparing hot-path variants of the node-overhead benchmark, each run in its own process.

A variant is a pair of the node's settings (``raw_subscriptions``,
``retain_large_buffers``); the malloc setting is process-wide, so every run of a
comparison is a fresh ``python -m rvm_ros.bench.node_overhead --variant V --json F``.
`compare` runs R rounds of the variants (order rotating each round) and reports medians
per variant and the median per-round ratio of each variant to the first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from rvm_ros.bench.node_overhead_figures import Figures

__all__ = ["COMPARED", "VARIANTS", "argv_common", "compare"]

#: Variant name -> (raw_subscriptions, retain_large_buffers, executor, opencv_threads).
#: opencv_threads 0 is OpenCV's own pool (what the node did before the parameter);
#: ``default`` is the node's defaults today.
VARIANTS = {
    "ordinary": (False, False, "single_threaded", 0),
    "ordinary+retain": (False, True, "single_threaded", 0),
    "raw-only": (True, False, "single_threaded", 0),
    "raw": (True, True, "single_threaded", 0),
    "events": (True, True, "events", 0),
    "default": (True, True, "events", 1),
}

COMPARED = (
    "overhead_ms_p50",
    "overhead_ms_p99",
    "dds_in_ms_p50",
    "callback_to_step_ms_p50",
    "node_cpu_ms_per_frame",
    "executor_cpu_ms_per_frame",
    "inference_non_model_cpu_ms_per_frame",
    "dds_threads_cpu_ms_per_frame",
    "executor_minor_faults_per_frame",
    "inference_minor_faults_per_frame",
    "step_ms_p50",
    "node_overwritten_in_queue",
    "frames_unaccounted",
    "node_dropped",
    "node_lost_in_transport",
    "node_processed",
    "frames_neither_processed_nor_lost_pct",
    "load_avg_1min_at_end",
)


def argv_common(args: argparse.Namespace) -> list[str]:
    """The command-line arguments shared by every run of a comparison."""
    out = [
        "--backend", args.backend, "--rate", str(args.rate), "--width", str(args.width),
        "--height", str(args.height), "--model-size", str(args.model_size),
        "--input-reliability", args.input_reliability, "--cameras", str(args.cameras),
    ]  # fmt: skip
    if args.checkpoint:
        out += ["--checkpoint", args.checkpoint]
    if args.seconds is not None:
        out += ["--seconds", str(args.seconds)]
    if args.no_tracking:
        out.append("--no-tracking")
    if args.tracking_sync:
        out.append("--tracking-sync")
    return out


def compare(common: list[str], variants: list[str], rounds: int) -> Figures:
    """Run ``rounds`` rounds of every variant, each run in its own process.

    The order of the variants rotates each round.

    Args:
        common: the command-line arguments of every run (`argv_common`).
        variants: names in `VARIANTS`; the first is the ratios' reference.
        rounds: how many rounds.

    Returns:
        Medians per variant of the `COMPARED` figures, the median per-round ratio of each
        variant to ``variants[0]``, outputs over frames sent, and every run's figures.

    Raises:
        RuntimeError: a run failed or wrote no figures.
    """
    runs: list[Figures] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for v in order:
                path = Path(tmp) / f"{r}_{v}.json"
                cmd = [sys.executable, "-m", "rvm_ros.bench.node_overhead", *common]
                cmd += ["--variant", v, "--json", str(path)]
                done = subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False, timeout=900)
                if done.returncode != 0 or not path.is_file():
                    raise RuntimeError(f"run {v} (round {r}) failed (exit {done.returncode})")
                res = json.loads(path.read_text())
                res["round"] = r
                runs.append(res)
                print(
                    f"round {r} {v}: overhead p50 {res['overhead_ms_p50']:.2f} ms, node CPU "
                    f"{res.get('node_cpu_ms_per_frame', float('nan')):.3f} ms/frame, "
                    f"load {res['load_avg_1min_at_end']:.2f}",
                    file=sys.stderr,
                )
    out: Figures = {"compare_rounds": rounds, "variants": variants}
    ref = variants[0]
    for key in COMPARED:
        for v in variants:
            vals = [x.get(key, float("nan")) for x in runs if x["variant"] == v]
            out[f"{v}_{key}_median"] = float(np.median(vals))
        for v in variants[1:]:
            ratios = []
            for r in range(rounds):
                a = next(x for x in runs if x["round"] == r and x["variant"] == ref)
                b = next(x for x in runs if x["round"] == r and x["variant"] == v)
                if a.get(key) and key != "load_avg_1min_at_end":
                    ratios.append(b.get(key, float("nan")) / a[key])
            if ratios:
                out[f"ratio_{v}_over_{ref}_{key}_median"] = float(np.median(ratios))
    for v in variants:
        sel = [x for x in runs if x["variant"] == v]
        out[f"{v}_outputs_over_sent"] = [f"{x['received_outputs']}/{x['published']}" for x in sel]
        out[f"{v}_lost_before_node"] = [x["lost_before_node"] for x in sel]
    out["rounds"] = runs
    return out
