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
