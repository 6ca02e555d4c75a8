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

__all__ = ["COMPARED", "RATIO_FIGURES", "VARIANTS", "argv_common", "compare", "summarise"]

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

#: The `COMPARED` figures that are times or CPU per frame, which get same-round ratios.
RATIO_FIGURES = frozenset(k for k in COMPARED if k.endswith(("_ms_p50", "_ms_p99", "_per_frame")))


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
    out = summarise(runs, variants, rounds)
    out["rounds"] = runs
    return out


def summarise(runs: list[Figures], variants: list[str], rounds: int) -> Figures:
    """Medians per variant, and the same-round ratios of the `RATIO_FIGURES` to ``variants[0]``.

    Counts (frames lost, dropped, ...) and the machine load get medians only: a ratio of
    two counts is no figure of merit, and one whose reference round counted 0 has none.

    Args:
        runs: every run's figures, each with its ``variant`` and ``round``.
        variants: the variants compared; the first is the ratios' reference.
        rounds: how many rounds were run.

    Returns:
        ``{v}_{key}_median`` per variant and figure, ``ratio_{v}_over_{ref}_{key}_median``
        per other variant and ratio figure, outputs over frames sent and frames lost
        before the node per run.
    """
    out: Figures = {"compare_rounds": rounds, "variants": variants}
    ref = variants[0]
    for key in COMPARED:
        for v in variants:
            vals = [x.get(key, float("nan")) for x in runs if x["variant"] == v]
            out[f"{v}_{key}_median"] = float(np.median(vals))
        if key not in RATIO_FIGURES:
            continue
        for v in variants[1:]:
            ratios = [_ratio(runs, r, ref, v, key) for r in range(rounds)]
            ratios = [x for x in ratios if np.isfinite(x)]
            if ratios:
                out[f"ratio_{v}_over_{ref}_{key}_median"] = float(np.median(ratios))
    for v in variants:
        sel = [x for x in runs if x["variant"] == v]
        out[f"{v}_outputs_over_sent"] = [f"{x['received_outputs']}/{x['published']}" for x in sel]
        out[f"{v}_lost_before_node"] = [x["lost_before_node"] for x in sel]
    return out


def _ratio(runs: list[Figures], r: int, ref: str, v: str, key: str) -> float:
    """``v``'s figure over ``ref``'s in round ``r``; NaN where either is missing or ref is 0."""
    a = next(x for x in runs if x["round"] == r and x["variant"] == ref).get(key)
    b = next(x for x in runs if x["round"] == r and x["variant"] == v).get(key)
    if not a or b is None:
        return float("nan")
    return float(b) / float(a)
