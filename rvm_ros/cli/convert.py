"""`rvm-ros convert`: check and convert an official RVM checkpoint to `.safetensors`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rvm_ros.cli import CliError


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.checkpoint.convert import convert
    from rvm_ros.checkpoint.errors import CheckpointError

    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise CliError(f"input checkpoint {src} not found")
    if dst.suffix != ".safetensors":
        raise CliError(f"output must end in .safetensors, got {dst}")
    if dst.exists() and not args.force:
        raise CliError(f"{dst} exists (use --force to replace it)")
    if dst.resolve() == src.resolve():
        raise CliError("input and output are the same file")
    try:
        config = convert(src, dst, progress=False if args.quiet else None)
    except CheckpointError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"wrote {dst}: RVM {config.variant} (D {config.dim}, encoder {config.enc_layers} x "
        f"{config.enc_heads} heads, core {config.core_layers} blocks)"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``convert``."""
    p = sub.add_parser(
        "convert",
        help="check and convert an official RVM .npz checkpoint to .safetensors",
        description="Check that every key of an official RVM checkpoint is consumed and "
        "every parameter filled (shapes included), then write the project's .safetensors "
        "with the architecture config and the source sha256 in its metadata. Nothing is "
        "written when the check fails.",
    )
    p.add_argument("input", metavar="OFFICIAL.npz", help="official checkpoint")
    p.add_argument("output", metavar="OUT.safetensors", help="converted checkpoint to write")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
