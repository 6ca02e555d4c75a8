"""`rvm-ros encode` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand (not implemented yet)."""
    p = sub.add_parser("encode", help="(not implemented yet)")
    p.set_defaults(func=lambda args: print("rvm-ros encode: not implemented yet") or 1)
