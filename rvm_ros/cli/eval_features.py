"""`rvm-ros eval-features`: does a checkpoint's feature map follow the scene or the grid?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rvm_ros.cli import CliError

if TYPE_CHECKING:
    from rvm_ros.evaluation.feature_sources import FeatureSource


def _sources(args: argparse.Namespace) -> list[FeatureSource]:
    """The checkpoints, random weights of the first one's architecture, raw pixels."""
    from rvm_ros.checkpoint import load_model
    from rvm_ros.cli.fit_center import DEFAULT_DATA
    from rvm_ros.evaluation.feature_sources import FeatureSource, pixel_source, random_like
    from rvm_ros.training.config import load_config

    models = [load_model(c) for c in args.checkpoint]
    patch = models[0].config.patch_size
    if any(m.config.patch_size != patch for m in models):
        raise CliError("--checkpoint: every checkpoint must have the same patch size")
    names = [m.model_id for m in models]
    out = [
        FeatureSource(n if names.count(n) == 1 else f"{n} ({c})", m, patch, c)
        for n, m, c in zip(names, models, args.checkpoint, strict=False)
    ]
    # A centred checkpoint's random twin gets its own centre from the training defaults.
    data = load_config(
        None, [*DEFAULT_DATA, f"data.height={args.height}", f"data.width={args.width}"]
    )
    twin = random_like(models[0], args.seed, center_data=data.data)
    return [*out, twin, pixel_source(patch)]


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rvm_ros.cli.validate import at_least, frame_sizes, model_patch_size
    from rvm_ros.evaluation.feature_inputs import DEFAULT_VIDEOS, benchmark_sources, load_units
    from rvm_ros.evaluation.feature_report import markdown_table, write_report
    from rvm_ros.evaluation.features import FeatureEvalSettings, evaluate_features
    from rvm_ros.fsutil import staged_output

    frame_sizes(args, model_patch_size(args.checkpoint[0]))
    at_least(args, 0, "warmup")
    at_least(args, 1, "sequences")
    at_least(args, 2, "frames", "static_frames")
    for bag in args.bags or []:
        if not Path(bag).exists():
            raise CliError(f"--bags {bag}: no such bag")
    settings = FeatureEvalSettings(
        height=args.height,
        width=args.width,
        warmup=args.warmup,
        sequences=args.sequences,
        frames=args.frames,
        static_frames=args.static_frames,
        max_speed=args.max_speed,
        seed=args.seed,
    )
    videos = list(args.videos or ([] if args.bags else DEFAULT_VIDEOS))
    bags, topics = list(args.bags or []), list(args.bag_topics or [])
    inputs = [*args.checkpoint, *videos, *bags, *(args.images or [])]
    with staged_output(args.out, inputs, force=args.force, what="--out") as work:
        units = load_units(
            videos, bags, topics, args.height, args.width, args.warmup + 2, args.warmup + 64
        )
        sources = _sources(args)
        bench = benchmark_sources(videos, bags, topics, args.images or [])
        bar = tqdm(total=len(sources) * 4 + 1, disable=None, file=sys.stderr)

        def progress(message: str) -> None:
            bar.set_description(message[:60])
            bar.update(1)

        results, extra = evaluate_features(sources, units, bench, settings, progress=progress)
        bar.close()
        write_report(work, results, extra, settings, sources[0].patch)
    print(markdown_table(results, extra), end="")
    print(f"written to {args.out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-features`` subcommand."""
    p = sub.add_parser(
        "eval-features",
        help="does a feature map describe the scene or the grid? (vs random weights, pixels)",
        description=(
            "For each checkpoint, the same architecture with random weights and raw pixel "
            "patches, on the same frames: the share of feature variance explained by the cell "
            "position / the content / time (video shots, after a warm-up), cell "
            "correspondence under camera motion of several cells (exact ground truth of the "
            "tracking benchmark's warps), stability on static content, nearest-neighbour "
            "propagation of object masks, and a PCA picture. Writes metrics.json, table.md, "
            "pca.png and correspondence.png to --out. Without --videos/--bags it uses "
            "development material (bikes.mp4 and the benchmark's development images)."
        ),
    )
    p.add_argument(
        "--checkpoint",
        nargs="+",
        required=True,
        help="one or more checkpoints (builtin:default, .safetensors, .npz, random:<variant>); "
        "the random-weights baseline takes the first one's architecture",
    )
    p.add_argument("--videos", nargs="+", help="videos (paths or sample:<name>)")
    p.add_argument("--bags", nargs="+", help="rosbag2 bags (their image topics)")
    p.add_argument("--bag-topics", nargs="+", help="image topics of --bags (default: all)")
    p.add_argument("--images", nargs="+", help="more still images for the benchmark's warps")
    p.add_argument("--out", required=True, help="output folder (built beside, then renamed)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--height", type=int, default=128, help="model input height")
    p.add_argument("--width", type=int, default=128, help="model input width")
    p.add_argument("--warmup", type=int, default=8, help="recurrent steps before measuring")
    p.add_argument("--sequences", type=int, default=8, help="benchmark sequences per check")
    p.add_argument("--frames", type=int, default=40, help="benchmark frames after the warm-up")
    p.add_argument("--static-frames", type=int, default=16, help="static frames after warm-up")
    p.add_argument(
        "--max-speed", type=float, default=6.0, help="benchmark camera speed (px/frame at 256)"
    )
    p.add_argument("--seed", type=int, default=0, help="benchmark and random-weights seed")
    p.set_defaults(func=_run)
