"""`rvm-ros convert`: check and convert an official RVM checkpoint to `.safetensors`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rvm_ros.cli import CliError


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.checkpoint.card import official_card
    from rvm_ros.checkpoint.convert import convert
    from rvm_ros.checkpoint.errors import CheckpointError
    from rvm_ros.fsutil import staged_output

    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise CliError(
            f"input checkpoint {src} not found" if not src.exists() else f"{src} is not a file"
        )
    if dst.suffix != ".safetensors":
        raise CliError(f"output must end in .safetensors, got {dst}")
    try:
        # built beside OUT and swapped in only when complete; never over the input
        with staged_output(dst, [src], force=args.force) as tmp:
            config = convert(src, tmp, progress=False if args.quiet else None)
    except CheckpointError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"wrote {dst}: RVM {config.variant} (D {config.dim}, encoder {config.enc_layers} x "
        f"{config.enc_heads} heads, core {config.core_layers} blocks)"
    )
    card = official_card(config)
    if card.known:
        print(f"model card: trained at {card.size_text()} ({card.source})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``convert``."""
    p = sub.add_parser(
        "convert",
        help="check and convert an official RVM .npz checkpoint to .safetensors",
        description="Check that every key of an official RVM checkpoint is consumed and "
        "every parameter filled (shapes included), then write the project's .safetensors "
        "with the architecture config, the source sha256 and, for the released sizes "
        "(S, B, L, H), the official model card (trained at 256x256) in its metadata. "
        "Nothing is written when the check fails.",
    )
    p.add_argument("input", metavar="OFFICIAL.npz", help="official checkpoint")
    p.add_argument("output", metavar="OUT.safetensors", help="converted checkpoint to write")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace OUT if it exists (once the new file is complete; never the input)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
