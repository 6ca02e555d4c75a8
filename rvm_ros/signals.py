"""Signals: SIGTERM handled like Ctrl-C, and a signal stack native code cannot break.

A robot's process manager stops a command with SIGTERM; outputs being built must then be
discarded or closed and marked partial exactly as after Ctrl-C. Handlers can only be set on
the main thread; elsewhere these helpers change nothing.

Python's handlers run on the thread's alternate signal stack (``SA_ONSTACK``). OpenVINO's
CPU plugin replaces the calling thread's alternate stack when it compiles a model and puts
back the one it found when the model is released; two models released in the order they
were made leave the thread pointing at freed memory, and the next signal (SIGTERM, SIGINT,
SIGCHLD) kills the process with a segmentation fault. :func:`keep_signal_stack` around
such calls keeps the thread's own stack in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["keep_signal_stack", "raise_interrupt", "signal_stack", "sigterm_as_interrupt"]


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


class _StackT(ctypes.Structure):
    """``stack_t`` of ``sigaltstack(2)`` (Linux layout)."""

    _fields_ = (
        ("ss_sp", ctypes.c_void_p),
        ("ss_flags", ctypes.c_int),
        ("ss_size", ctypes.c_size_t),
    )


def _sigaltstack() -> Callable[..., int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sigaltstack
    except (OSError, AttributeError):  # no libc symbol (not Linux / macOS): nothing to keep
        return None
    fn.argtypes = (ctypes.POINTER(_StackT), ctypes.POINTER(_StackT))
    fn.restype = ctypes.c_int
    return fn


_SIGALTSTACK = _sigaltstack()


def signal_stack() -> tuple[int, int, int] | None:
    """The calling thread's alternate signal stack ``(address, size, flags)``; None where
    ``sigaltstack`` is not available."""
    if _SIGALTSTACK is None:
        return None
    current = _StackT()
    if _SIGALTSTACK(None, ctypes.byref(current)) != 0:
        return None
    return (int(current.ss_sp or 0), int(current.ss_size), int(current.ss_flags))


@contextlib.contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Within the block native code may change the thread's alternate signal stack; on
    leaving it, the stack the thread had before is put back (see the module docstring)."""
    saved = _StackT()
    ok = _SIGALTSTACK is not None and _SIGALTSTACK(None, ctypes.byref(saved)) == 0
    try:
        yield
    finally:
        if ok and _SIGALTSTACK is not None:
            saved.ss_flags &= ~1  # SS_ONSTACK is reported, never set
            _SIGALTSTACK(ctypes.byref(saved), None)
