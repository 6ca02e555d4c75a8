"""`rvm-ros make-street`: generated street drives with exact ego-motion, as rosbag2."""

from __future__ import annotations

import argparse

from rvm_ros.cli import CliError


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.bags.make_street import make_street, make_streets
    from rvm_ros.street.drive import StreetConfig

    if args.drives < 1:
        raise CliError(f"--drives must be >= 1, got {args.drives}")
    if args.workers < 1:
        raise CliError(f"--workers must be >= 1, got {args.workers}")
    cfg = StreetConfig(
        seed=args.seed,
        duration_s=args.duration,
        fps=args.fps,
        cameras=args.cameras,
        width=args.width,
        height=args.height,
        hfov_deg=args.hfov,
        points=args.points,
    )  # RigError (exit 2) on a bad combination
    if args.drives == 1:
        bags = [make_street(args.out, cfg, args.storage, force=args.force)]
    else:
        bags = make_streets(
            args.out,
            cfg,
            args.drives,
            args.storage,
            args.force,
            args.workers,
            on_done=lambda b: print(f"wrote {b.bag}", flush=True),
        )
    for b in bags:
        print(
            f"{b.bag}: {b.frames} frames x {len(b.cameras)} cameras "
            f"({', '.join(b.cameras)}), {b.points} ground-truth points"
        )
    print("replay with: rvm-ros replay BAG --config BAG/rvm_params.yaml --out OUT")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``make-street``."""
    p = sub.add_parser(
        "make-street",
        help="generate street drives with exact ego-motion and point tracks (rosbag2)",
        description="Generate street-like drives (ground, façades, poles, parked and moving "
        "cars, pedestrians) seen by a 1-6 camera rig on a smooth path with turns and stops; "
        "write images, CameraInfo, /tf_static, /tf, /odom and <image topic>/gt_tracks. "
        "Deterministic by --seed.",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="BAG",
        help="bag folder (with --drives N > 1: a folder of drive_<seed> bags)",
    )
    p.add_argument("--drives", type=int, default=1, help="number of drives (seeds seed..)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=30.0, help="seconds per drive")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument(
        "--cameras",
        type=int,
        default=3,
        help="1-6: front, front_left, front_right, back, back_left, back_right",
    )
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--hfov", type=float, default=90.0, help="horizontal field of view (deg)")
    p.add_argument(
        "--points", type=int, default=24, help="ground-truth points seeded per camera every 2 s"
    )
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--workers", type=int, default=1, help="drives rendered in parallel")
    p.add_argument("--force", action="store_true", help="replace existing bags")
    p.set_defaults(func=_run)
