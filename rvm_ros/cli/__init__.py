"""The `rvm-ros` command: one entry point for everything off-robot.

Each subcommand lives in its own module of this package exposing
``register(subparsers) -> None``; the parser it adds sets ``func`` to a callable
``(args) -> int`` (the exit code). The CLI validates arguments and calls library
functions; it holds no model or I/O logic of its own.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from rvm_ros import __version__
from rvm_ros.errors import RvmRosError
from rvm_ros.signals import sigterm_as_interrupt

# Subcommand modules, in the order `rvm-ros --help` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "convert",
    "fetch",
    "encode",
    "export",
    "bench",
    "make_bag",
    "make_street",
    "replay",
    "play",
    "demo",
    "train",
    "eval_reconstruction",
    "eval_tracking",
    "distill",
    "eval_distill",
    "eval_features",
    "fit_center",
    "train_head",
    "eval_head",
    "e2e_table",
)


class CliError(RvmRosError):
    """A usage error found by the CLI itself: printed as ``rvm-ros: error: <message>``, exit 2.

    Any other :class:`~rvm_ros.errors.RvmRosError` that reaches :func:`main` is printed the
    same way with its own exit code (1 for runtime failures), and so is an ``OSError``
    (exit code 1: a file the OS refused); other exceptions keep their traceback.
    """

    cause = "usage"
    exit_code = 2


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="rvm-ros",
        description="RVM perception tools: checkpoints, export, benchmarks, bag replay.",
    )
    parser.add_argument("--version", action="version", version=f"rvm-ros {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"rvm_ros.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # SIGTERM stops any command like Ctrl-C: outputs being built are discarded or, for
    # ``replay``, closed and marked partial.
    try:
        with sigterm_as_interrupt():
            return int(args.func(args))
    except RvmRosError as exc:  # expected failures: one line, never a traceback
        print(f"rvm-ros: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # an input or output the OS refused (permissions, disk full, ...)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"rvm-ros: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rvm-ros: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
