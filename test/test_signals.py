"""rvm_ros.signals: SIGTERM becomes a KeyboardInterrupt inside the block, and only there."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from rvm_ros.signals import sigterm_as_interrupt


def test_sigterm_raises_keyboard_interrupt_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 1.0)  # let the handler run
    assert signal.getsignal(signal.SIGTERM) == before


def test_ignore_mode_swallows_sigterm() -> None:
    with sigterm_as_interrupt(ignore=True):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.05)
    # reaching here is the point: no interrupt, process alive


def test_off_the_main_thread_nothing_changes() -> None:
    seen: list[object] = []

    def work() -> None:
        with sigterm_as_interrupt():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [before]


def test_keep_signal_stack_puts_back_the_threads_stack() -> None:
    import ctypes

    from rvm_ros.signals import keep_signal_stack, signal_stack

    before = signal_stack()
    if before is None:
        pytest.skip("sigaltstack is not available on this platform")

    class StackT(ctypes.Structure):
        _fields_ = (("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t))

    buf = ctypes.create_string_buffer(64 * 1024)
    other = StackT(ctypes.cast(buf, ctypes.c_void_p), 0, len(buf))
    libc = ctypes.CDLL(None)
    with keep_signal_stack():
        assert libc.sigaltstack(ctypes.byref(other), None) == 0  # what native code does
        assert signal_stack() == (ctypes.addressof(buf), len(buf), 0)
    assert signal_stack() == before
