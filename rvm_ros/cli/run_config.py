"""What ``rvm-ros train`` and ``rvm-ros distill`` share: a run configuration from
``--config``, the ``KEY=VALUE`` overrides and the options that stand for some of them; and
the one process of a torchrun job that prints the summary."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from rvm_ros.cli import CliError

__all__ = ["add_config_arguments", "add_stop_arguments", "is_main_rank", "load_run_config"]

C = TypeVar("C")


def add_config_arguments(p: argparse.ArgumentParser, example: str) -> None:
    """``--config`` and the positional ``KEY=VALUE`` overrides (``example``: their help)."""
    p.add_argument("--config", default=None, help="YAML configuration (default: built-ins)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=f"overrides, e.g. {example}")


def add_stop_arguments(p: argparse.ArgumentParser) -> None:
    """``--stop-at``: end the run early, resumable later."""
    p.add_argument(
        "--stop-at",
        type=int,
        default=None,
        help="stop after this many steps in total (schedule unchanged; resume later)",
    )


def load_run_config(
    load: Callable[[str | None, list[str]], C], args: argparse.Namespace, options: Sequence[str]
) -> C:
    """``load(args.config, overrides)``: ``args.overrides``, then ``KEY=VALUE`` for each of
    ``options`` given on the command line (``--out-dir`` is ``out_dir=...``).

    Raises:
        CliError: An invalid configuration (one line).
    """
    from rvm_ros.training import TrainConfigError

    overrides = list(args.overrides)
    for key in options:
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        return load(args.config, overrides)
    except TrainConfigError as exc:
        raise CliError(str(exc)) from exc


def is_main_rank() -> bool:
    """Whether this is the process that reports (rank 0 of a torchrun job, or the only one)."""
    return int(os.environ.get("RANK", "0")) == 0
