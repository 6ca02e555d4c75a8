"""`rvm-ros train-head`: a planning head on a replay's SceneTokens and ego poses."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rvm_ros.cli import CliError

if TYPE_CHECKING:
    from rvm_ros.heads import HeadSamples


def horizons(text: str) -> tuple[float, ...]:
    """``"0.5,1,2"`` -> ``(0.5, 1.0, 2.0)`` (positive, increasing)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise CliError(f"--horizons must be numbers separated by commas, got {text!r}") from None
    if not values or any(v <= 0 for v in values) or list(values) != sorted(set(values)):
        raise CliError(f"--horizons must be positive and increasing, got {text!r}")
    return values


def load_samples(args: argparse.Namespace, max_window: int) -> HeadSamples:
    """The samples of the replay outputs ``args.paths`` (SceneTokenDataset)."""
    from rvm_ros.datasets import SceneTokenDataset
    from rvm_ros.datasets.head_samples import samples_from_dataset

    if args.pool < 1:
        raise CliError(f"--pool must be >= 1, got {args.pool}")
    ds = SceneTokenDataset(args.paths, topic=args.topic, pose_topic=args.pose_topic)
    try:
        return samples_from_dataset(ds, horizons(args.horizons), max_window, args.pool)
    finally:
        ds.close()


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.heads import FitConfig
    from rvm_ros.training.head import train_head

    if args.window < 1 or args.epochs < 1 or args.val_drives < 1:
        raise CliError("--window, --epochs and --val-drives must be >= 1")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CliError(f"{out} exists; pass --force to replace it")
    samples = load_samples(args, args.window)
    fit = FitConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed)
    meta = {"pool": args.pool, "pose_topic": args.pose_topic, "paths": [str(p) for p in args.paths]}
    report = train_head(
        samples,
        out,
        fit,
        args.past_poses,
        args.window,
        args.val_drives,
        meta,
    )
    if report["rank"] != 0:  # torchrun: rank 0 writes and reports
        return 0
    report_path = out.with_suffix(".json")
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    val = report["val"]
    for name in ("head", "constant_velocity", "constant_turn_rate"):
        m = val[name]["all"]
        keys = [k for k in m if k.startswith(("ade", "fde"))]
        print(f"{name:20s} " + "  ".join(f"{k} {m[k]:.3f}" for k in keys))
    print(
        f"wrote {out} and {report_path} ({report['train_samples']} train / "
        f"{report['val_samples']} validation samples)"
    )
    return 0


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by train-head and eval-head."""
    p.add_argument(
        "paths",
        nargs="+",
        metavar="REPLAY",
        help="replay outputs (rvm-ros replay with scene_tokens.enabled) or features bags",
    )
    p.add_argument(
        "--pose-topic",
        default="/odom",
        help="nav_msgs/Odometry or PoseStamped topic (features bag or replayed bag)",
    )
    p.add_argument("--topic", default=None, help="SceneTokens topic (default: the only one)")
    p.add_argument("--horizons", default="0.5,1,2", help="prediction horizons (s)")
    p.add_argument("--pool", type=int, default=1, help="average-pool the token grid NxN")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``train-head``."""
    p = sub.add_parser(
        "train-head",
        help="train a planning head on replayed SceneTokens with ego-pose targets",
        description="Train a planning head (attention pooling over all cameras' tokens + "
        "MLP -> ego x, y, yaw at fixed horizons) on the SceneTokens of replayed drives; the "
        "last --val-drives drives are held out and scored against constant velocity. "
        "Runs under torchrun too (DDP, gloo).",
    )
    add_data_arguments(p)
    p.add_argument("--out", required=True, help="head checkpoint (.safetensors)")
    p.add_argument("--past-poses", action="store_true", help="give the head past poses too")
    p.add_argument("--window", type=int, default=1, help="temporal aggregator over W steps")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-drives", type=int, default=1, help="drives held out for validation")
    p.add_argument("--force", action="store_true", help="replace --out")
    p.set_defaults(func=_run)
