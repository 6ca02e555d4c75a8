"""The one argument-validation helper of the subcommands: each check raises a one-line
:class:`~rvm_ros.cli.CliError` (exit code 2) naming the option and the value given."""

from __future__ import annotations

import argparse

from rvm_ros.cli import CliError

__all__ = ["at_least", "frame_sizes", "model_patch_size"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def at_least(args: argparse.Namespace, minimum: float, *names: str, note: str = "") -> None:
    """Refuse any of ``names`` (attributes of ``args``; None is skipped) below ``minimum``.

    Message: ``--<name> must be >= <minimum><note>, got <value>``.
    """
    for name in names:
        value = getattr(args, name)
        if value is not None and value < minimum:
            raise CliError(f"{_flag(name)} must be >= {minimum}{note}, got {value}")


def frame_sizes(
    args: argparse.Namespace, patch: int, maximum: int | None = None, *names: str
) -> None:
    """Refuse frame sizes (``names``, default height and width) that are not positive
    multiples of the model's ``patch`` size (or exceed ``maximum``); None is skipped.

    Message: ``--<name> must be a positive multiple of <patch>[ up to <maximum>], got <v>``.
    """
    for name in names or ("height", "width"):
        value = getattr(args, name)
        if value is None:
            continue
        if value <= 0 or value % patch or (maximum is not None and value > maximum):
            limit = f" up to {maximum}" if maximum is not None else ""
            raise CliError(
                f"{_flag(name)} must be a positive multiple of {patch}{limit}, got {value}"
            )


def model_patch_size(checkpoint: str) -> int:
    """Patch size of a checkpoint's architecture (read from its config, not loading it).

    Raises:
        CliError: The checkpoint cannot be read.
    """
    from rvm_ros.checkpoint.load import read_config

    try:
        return read_config(checkpoint).patch_size
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot load checkpoint {checkpoint}: {exc}") from exc


def at_most(
    args: argparse.Namespace, most: int, *names: str, bytes_each: float = 1.0, hint: str = ""
) -> None:
    """Refuse any of ``names`` above ``most`` or whose memory estimate (``bytes_each`` per
    unit) exceeds the allocation limit: `rvm_ros.errors.TooLarge` (one line, exit 2)."""
    from rvm_ros.errors import check_size

    for name in names:
        value = getattr(args, name)
        if value is not None:
            check_size(_flag(name), value, most=most, bytes_each=bytes_each, hint=hint)
