"""SIGTERM handled like Ctrl-C: the package's one signal handler.

A robot's process manager stops a command with SIGTERM; outputs being built must then be
discarded or closed and marked partial exactly as after Ctrl-C. Handlers can only be set on
the main thread; elsewhere these helpers change nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["raise_interrupt", "sigterm_as_interrupt"]


def raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    """Signal handler: raise ``KeyboardInterrupt`` naming the signal."""
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_as_interrupt(ignore: bool = False) -> Iterator[None]:
    """Within the block, SIGTERM stops the work exactly like Ctrl-C (SIGINT) does.

    The main thread gets a ``KeyboardInterrupt``; the previous handler is restored on exit.
    Outside the main thread this changes nothing.

    Args:
        ignore: Ignore SIGTERM instead (e.g. while the report of a stopped run is written).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore else raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
