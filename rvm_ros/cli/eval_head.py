"""`rvm-ros eval-head`: a trained planning head on replayed drives, against baselines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rvm_ros.cli.train_head import add_data_arguments, load_samples


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.heads import SEGMENTS
    from rvm_ros.training.head import evaluate_head, load_head

    head, meta = load_head(args.head)
    args.pool = int(meta.get("pool", args.pool))
    window = int(meta.get("window", 1))
    samples = load_samples(args, window)
    result = evaluate_head(head, samples, bool(meta.get("use_past")), window)
    hz = head.config.horizons_s
    print(
        f"{'':20s} "
        + " ".join(f"ADE{h:g}s" for h in hz)
        + f"  FDE{hz[-1]:g}s  "
        + " ".join(f"ADE1s-{s}" for s in SEGMENTS)
    )
    for name, m in result.items():
        cells = [f"{m['all'][f'ade@{h:g}s']:6.3f}" for h in hz]
        cells.append(f"{m['all'][f'fde@{hz[-1]:g}s']:7.3f}")
        cells += [f"{m[s]['ade@1s']:10.3f}" for s in SEGMENTS]
        print(f"{name:20s} " + " ".join(cells))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval-head``."""
    p = sub.add_parser(
        "eval-head",
        help="evaluate a planning head on replayed drives (ADE/FDE per horizon and segment)",
        description="Score a train-head checkpoint on the SceneTokens of replayed drives: "
        "ADE/FDE at each horizon, overall and on straight, turning and stopping segments, "
        "with constant velocity and constant turn rate beside it.",
    )
    p.add_argument("head", help="head checkpoint from train-head")
    add_data_arguments(p)
    p.add_argument("--out", default=None, help="write the metrics as JSON here")
    p.set_defaults(func=_run)
