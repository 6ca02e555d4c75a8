"""`rvm-ros play`: publish a bag's messages over DDS at the recorded rate."""

from __future__ import annotations

import argparse
import sys

from rvm_ros.cli import CliError

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.cli.validate import at_least
    from rvm_ros.node.play import PlayError, play

    at_least(args, 0, "rate", note=" (0: as fast as possible)")
    at_least(args, 1, "depth")
    try:
        stats = play(
            args.bag,
            rate=args.rate,
            loop=args.loop,
            topics=args.topics or None,
            reliable=args.qos == "reliable",
            depth=args.depth,
            wait_subscribers=args.wait_subscribers,
        )
    except PlayError as exc:
        raise CliError(str(exc)) from exc
    for topic, count in stats.published.items():
        print(f"{topic}: {count} messages")
    for err in stats.read_errors:
        print(f"read error: {err}", file=sys.stderr)
    if stats.interrupted:
        print("rvm-ros play: interrupted", file=sys.stderr)
        return 130
    return 1 if stats.read_errors else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``play``."""
    p = sub.add_parser(
        "play",
        help="publish a bag's messages over DDS at the recorded rate (no ros2 bag needed)",
        description="Publish every message of a rosbag2 (mcap or sqlite3) over DDS with "
        "rclpy, spaced as recorded (divided by --rate), for driving the live node.",
    )
    p.add_argument("bag", metavar="BAG", help="rosbag2 folder or .mcap/.db3 file")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor (0: no pacing)")
    p.add_argument("--loop", action="store_true", help="start over at the end")
    p.add_argument("--topics", nargs="+", default=None, help="only these topics")
    p.add_argument("--qos", choices=("reliable", "best_effort"), default="reliable")
    p.add_argument("--depth", type=int, default=100, help="publisher history depth")
    p.add_argument(
        "--wait-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="wait (up to 10 s) until every topic has N subscribers before publishing",
    )
    p.set_defaults(func=_run)
