"""`rvm-ros e2e-table`: token sources for a planning head compared in one run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rvm_ros.cli import CliError

if TYPE_CHECKING:
    from rvm_ros.bench.e2e import E2ESettings


def _bags(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / "metadata.yaml").is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(q for q in p.iterdir() if (q / "metadata.yaml").is_file())
        else:
            raise CliError(f"{p} is neither a bag nor a folder of bags")
    return out


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.bench.e2e import E2ESettings, e2e_markdown, run_e2e
    from rvm_ros.cli.train_head import horizons
    from rvm_ros.fsutil import atomic_write
    from rvm_ros.heads import FitConfig

    bags = _bags(args.bags)
    if len(bags) < 2:
        raise CliError(f"need at least 2 drives, found {len(bags)}")
    if args.size % 16 or not 32 <= args.size <= 1024:
        raise CliError(f"--size must be a multiple of 16 in 32-1024, got {args.size}")
    settings = E2ESettings(
        bags=tuple(bags),
        checkpoint=args.checkpoint,
        random_weights=not args.no_random,
        size=(args.size, args.size),
        pool=args.pool,
        pose_topic=args.pose_topic,
        test_drives=args.test_drives,
        window=args.window,
        horizons_s=horizons(args.horizons),
        fit=FitConfig(epochs=args.epochs, batch=args.batch, seed=args.seed),
        with_past=not args.no_past,
        cache=Path(args.cache) if args.cache else None,
        threads=args.threads,
        cameras=tuple(args.cameras.split(",")) if args.cameras else None,
        weights=args.weights,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.sizes:
        return _sizes(args, settings, out)
    result = run_e2e(
        settings, progress=sys.stderr.isatty(), log=lambda m: print(m, file=sys.stderr, flush=True)
    )
    text = e2e_markdown(result)
    atomic_write(out / "e2e.json", lambda t: t.write_text(json.dumps(result, indent=1) + "\n"))
    atomic_write(out / "e2e.md", lambda t: t.write_text(text))
    print(text)
    print(f"wrote {out / 'e2e.json'} and {out / 'e2e.md'} ({result['total_s']} s)")
    return 0


def _sizes(args: argparse.Namespace, settings: E2ESettings, out: Path) -> int:
    """``--sizes A,B``: the head at each size, and the features' change between them."""
    from dataclasses import replace

    from rvm_ros.bench.e2e import run_e2e, sizes_markdown
    from rvm_ros.bench.e2e_sizes import feature_change
    from rvm_ros.fsutil import atomic_write

    try:
        sizes = [int(v) for v in args.sizes.split(",")]
    except ValueError:
        raise CliError(f"--sizes must be two integers, e.g. 224,256, got {args.sizes!r}") from None
    if len(sizes) != 2 or any(v % 16 or not 32 <= v <= 1024 for v in sizes):
        raise CliError(f"--sizes must be two multiples of 16 in 32-1024, got {args.sizes!r}")
    results = {}
    for size in sizes:
        s = replace(settings, size=(size, size), random_weights=False)
        results[str(size)] = run_e2e(
            s, progress=sys.stderr.isatty(), log=lambda m: print(m, file=sys.stderr, flush=True)
        )
    change = feature_change(
        s.bags[:2], s.checkpoint, (sizes[0], sizes[1]), threads=s.threads, cameras=s.cameras
    )
    report = {"heads": results, "feature_change": change}
    text = sizes_markdown(report)
    atomic_write(
        out / "e2e_sizes.json", lambda t: t.write_text(json.dumps(report, indent=1) + "\n")
    )
    atomic_write(out / "e2e_sizes.md", lambda t: t.write_text(text))
    print(text)
    print(f"wrote {out / 'e2e_sizes.json'} and {out / 'e2e_sizes.md'}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``e2e-table``."""
    p = sub.add_parser(
        "e2e-table",
        help="compare token sources for a planning head (node, per-frame, window, pixels)",
        description="Train the same planning head on the node's recurrent tokens, per-frame "
        "encoder tokens, per-frame tokens with a temporal aggregator and raw-pixel patches "
        "of the same drives (and with random weights), next to constant velocity and a "
        "past-poses-only head; ADE/FDE per horizon and segment on held-out drives.",
    )
    p.add_argument("bags", nargs="+", help="drive bags (or folders of them) with ego poses")
    p.add_argument("--out", required=True, help="folder for e2e.json and e2e.md")
    p.add_argument("--checkpoint", default="builtin:default")
    p.add_argument("--no-random", action="store_true", help="skip the random-weights rows")
    p.add_argument("--no-past", action="store_true", help="skip the tokens + past poses rows")
    p.add_argument("--size", type=int, default=128, help="network input side (128, 224, 256)")
    p.add_argument("--pool", type=int, default=2, help="token grid pooling (every source)")
    p.add_argument("--pose-topic", default="/odom")
    p.add_argument("--test-drives", type=int, default=0, help="held-out drives (0: a quarter)")
    p.add_argument("--window", type=int, default=4, help="temporal aggregator frames")
    p.add_argument("--horizons", default="0.5,1,2")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None, help="folder caching extracted tokens per bag")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--cameras", default=None, help="comma-separated cameras (default: all)")
    p.add_argument(
        "--weights",
        choices=("both", "trained", "random"),
        default="both",
        help="rows of the checkpoint, of random weights, or both (default)",
    )
    p.add_argument(
        "--sizes",
        default=None,
        metavar="A,B",
        help="instead: the head at two input sizes (e.g. 224,256) and the "
        "features' change between them on the same frames",
    )
    p.set_defaults(func=_run)
