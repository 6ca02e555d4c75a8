"""`rvm-ros eval-tracking`: every tracker method on sequences with exact ground truth."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from rvm_ros.cli import CliError


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.bench.tracking import EvalTrackingSettings, run_eval_tracking
    from rvm_ros.cli.validate import at_most
    from rvm_ros.tracking.config import TrackerConfig
    from rvm_ros.tracking.evaluation.methods import METHODS
    from rvm_ros.tracking.evaluation.sequence import SPLITS, BenchmarkConfig

    at_most(args, 4096, "height", "width")
    at_most(args, 100_000, "sequences")
    at_most(args, 100_000, "frames", bytes_each=args.height * args.width * 3 * 8)
    # Per sequence: every point's position, visibility and confidence on every frame, and
    # the per-point tracker state of each method.
    at_most(args, 100_000, "points", bytes_each=max(1, args.frames) * 64 + 64 * 1024)
    methods = tuple(args.methods.split(",")) if args.methods else METHODS
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise CliError(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(METHODS)})")
    for src in args.source or []:
        if not Path(src).is_file():
            raise CliError(f"--source {src}: no such file")
    if args.bag is not None and not Path(args.bag).exists():
        raise CliError(f"--bag {args.bag}: no such bag")
    try:
        bench = BenchmarkConfig(
            seed=args.seed,
            num_sequences=args.sequences,
            num_frames=args.frames,
            height=args.height,
            width=args.width,
            num_points=args.points,
        )
        tracker = dataclasses.replace(
            TrackerConfig(), method="hybrid", **_tracker_settings(args.tracker or [])
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    settings = EvalTrackingSettings(
        checkpoint=args.checkpoint,
        splits=SPLITS if args.split == "all" else (args.split,),
        benchmark=bench,
        sources=tuple(args.source or ()),
        bag=args.bag,
        bag_topic=args.bag_topic,
        methods=methods,
        tracker=tracker,
        model_size=_model_size(args.model_size),
    )
    result = run_eval_tracking(settings, args.out, force=args.force)
    print((Path(args.out) / "tracking.md").read_text(), end="")
    print(f"model {result['model_id']}; written to {args.out}")
    return 0


def _model_size(text: str) -> tuple[int, int]:
    """``HxW`` (e.g. ``128x128``) as ``(height, width)``."""
    h, sep, w = text.lower().partition("x")
    if not (sep and h.isdigit() and w.isdigit() and int(h) >= 16 and int(w) >= 16):
        raise CliError(f"--model-size {text!r}: expected HEIGHTxWIDTH, e.g. 128x128")
    return int(h), int(w)


# Any: YAML scalars of any TrackerConfig field, typed and range-checked by TrackerConfig itself.
def _tracker_settings(items: list[str]) -> dict[str, Any]:
    """``--tracker KEY=VALUE`` items as TrackerConfig fields (values parsed as YAML scalars)."""
    import yaml

    from rvm_ros.tracking.config import TrackerConfig

    fields = {f.name for f in dataclasses.fields(TrackerConfig)} - {"method"}
    out: dict[str, Any] = {}  # Any: see above
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise CliError(
                f"--tracker {item!r}: expected KEY=VALUE with KEY one of "
                f"{', '.join(sorted(fields))}"
            )
        out[key] = yaml.safe_load(value)
    return out


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-tracking`` subcommand."""
    p = sub.add_parser(
        "eval-tracking",
        help="score every tracker method on sequences with exact ground truth (TAP-Vid metrics)",
        description=(
            "Run the package's trackers (hybrid, klt, propagation), OpenCV Lucas-Kanade with a "
            "forward-backward check, label propagation on raw pixels and a static floor on the "
            "same sequences in one process; write metrics.json, tracking.md and PNGs to --out."
        ),
    )
    p.add_argument(
        "--checkpoint",
        default="builtin:default",
        help="RVM weights for the feature methods: builtin:default (the shipped model), "
        ".npz, .safetensors or random:<variant>",
    )
    p.add_argument(
        "--split",
        choices=("plain", "occluder", "gap", "objects", "street", "all"),
        default="all",
        help="one split, or all (plain, occluder, gap, objects; street only when asked)",
    )
    p.add_argument("--out", required=True, help="output folder (built beside, then renamed)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sequences", type=int, default=8, help="sequences per split")
    p.add_argument("--frames", type=int, default=48, help="frames per sequence")
    p.add_argument("--points", type=int, default=64, help="query points per sequence")
    p.add_argument("--height", type=int, default=256, help="frame height of the sequences")
    p.add_argument("--width", type=int, default=256, help="frame width of the sequences")
    p.add_argument(
        "--model-size",
        default="128x128",
        help="network input HxW the RVM features are computed at (frames resized to it, as "
        "the node does; default: config/rvm.yaml's model_height x model_width)",
    )
    p.add_argument(
        "--source",
        action="append",
        metavar="FILE",
        help="image or video to build sequences from (repeatable; default: development images)",
    )
    p.add_argument("--bag", help="evaluate on this bag's <image topic>/gt_tracks instead")
    p.add_argument("--bag-topic", help="image topic of --bag (default: the one with gt_tracks)")
    p.add_argument("--methods", help="comma-separated subset (default: all)")
    p.add_argument(
        "--tracker",
        action="append",
        metavar="KEY=VALUE",
        help="tracker setting for the package's methods, e.g. feature_weight=0 (repeatable; "
        "the tracker.* node parameters without the prefix)",
    )
    p.set_defaults(func=_run)
