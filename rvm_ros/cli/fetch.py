"""`rvm-ros fetch`: download and convert an official RVM checkpoint."""

from __future__ import annotations

import argparse

from rvm_ros.cli import CliError


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.checkpoint.errors import CheckpointError
    from rvm_ros.checkpoint.fetch import (
        FetchError,
        NetworkUnreachable,
        VerificationError,
        checkpoint_url,
        fetch,
    )

    url = checkpoint_url(args.variant, args.base_url)
    print(f"fetching RVM-{args.variant} from {url}")
    try:
        result = fetch(
            args.variant,
            dest_dir=args.dest,
            base_url=args.base_url,
            progress=not args.quiet,
            convert=not args.no_convert,
            sha256=args.sha256,
        )
    except NetworkUnreachable as exc:
        raise CliError(str(exc)) from exc
    except VerificationError as exc:
        raise CliError(f"verification failed: {exc}") from exc
    except FetchError as exc:
        raise CliError(f"download failed: {exc}") from exc
    except CheckpointError as exc:
        raise CliError(f"downloaded file is not a valid RVM checkpoint: {exc}") from exc
    print(f"{result.npz}")
    if result.verified:
        print(f"sha256 {result.sha256} (verified)")
    else:
        print(
            f"sha256 {result.sha256} (unverified: no pinned hash for RVM-{args.variant} is "
            "known to this release; compare it with a trusted source or pass --sha256)"
        )
    if result.safetensors is not None:
        print(f"converted: {result.safetensors}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fetch``."""
    from rvm_ros.checkpoint.fetch import CHECKPOINT_FILES, URL_ENV

    p = sub.add_parser(
        "fetch",
        help="download (resumable, verified) and convert an official RVM checkpoint",
        description="Download an official RVM checkpoint into ~/.cache/rvm_ros/checkpoints "
        "(resumable: an interrupted download continues from its .part file), check its size, "
        "its sha256 (against --sha256, or the pinned hash where this release knows one; "
        "otherwise it is printed as unverified), that it is an RVM checkpoint of the size "
        "asked for, store its sha256 (<file>.sha256) and convert it to .safetensors. A file "
        "that fails a check is deleted, never kept.",
    )
    p.add_argument("variant", choices=list(CHECKPOINT_FILES), help="model size")
    p.add_argument("--dest", default=None, help="target folder (default ~/.cache/rvm_ros/...)")
    p.add_argument("--base-url", default=None, help=f"folder URL to download from (or ${URL_ENV})")
    p.add_argument("--sha256", default=None, help="expected sha256 of the file (64 hex digits)")
    p.add_argument("--no-convert", action="store_true", help="only download the .npz")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
