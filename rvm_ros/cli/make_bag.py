"""`rvm-ros make-bag`: build a rosbag2 of camera images from video files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rvm_ros.cli import CliError


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.bags.make_bag import MAX_SIDE, make_bag
    from rvm_ros.cli.validate import at_least

    at_least(args, 1, "max_frames")
    if args.width is not None and not 16 <= args.width <= MAX_SIDE:
        raise CliError(f"--width must be between 16 and {MAX_SIDE}, got {args.width}")
    result = make_bag(
        [Path(v) for v in args.videos],
        Path(args.out),
        storage=args.storage,
        compressed=args.compressed,
        topic_prefix=args.topic_prefix,
        max_frames=args.max_frames,
        width=args.width,
        force=args.force,
        progress=sys.stderr.isatty(),
        strict=args.strict,
    )  # MakeBagError / OutputError: one line, exit 2 for usage errors, 1 for bad videos
    for cam in result.cameras:
        print(f"{cam.topic}: {cam.frames} frames {cam.width}x{cam.height} from {cam.video}")
    print(f"wrote {result.bag} ({result.storage})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``make-bag``."""
    p = sub.add_parser(
        "make-bag",
        help="build a rosbag2 of camera images from videos (one camera per video)",
        description="Build a rosbag2 (mcap or sqlite3) with one camera per video: "
        "sensor_msgs/Image rgb8 (or CompressedImage JPEG) at the video's frame times.",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    p.add_argument("--out", required=True, metavar="BAG", help="bag folder to create")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--compressed", action="store_true", help="write JPEG CompressedImage")
    p.add_argument("--topic-prefix", default="/cameras", help="topics: PREFIX/<camera>/image_raw")
    p.add_argument("--max-frames", type=int, default=None, help="frames per video at most")
    p.add_argument("--width", type=int, default=None, help="downscale frames to this width")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace BAG if it exists (only after the new bag is complete; never an input)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="a video with fewer frames than its container lists is an error (exit 1)",
    )
    p.set_defaults(func=_run)
