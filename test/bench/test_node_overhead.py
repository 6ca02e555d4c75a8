"""Pieces of the node-overhead benchmark that need no DDS (the run itself is a benchmark,
recorded in docs/BENCHMARKS.md, not a test)."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("rclpy")

from rvm_ros.bench.node_overhead_compare import VARIANTS
from rvm_ros.bench.node_overhead_threads import cpu_delta, thread_cpu_s, thread_stats


def test_variants_cover_both_settings_and_both_executors() -> None:
    assert VARIANTS["ordinary"] == (False, False, "single_threaded")  # before issue 17
    assert VARIANTS["raw"] == (True, True, "single_threaded")  # before issue 26
    assert VARIANTS["events"] == (True, True, "events")  # the defaults
    single = {(a, b) for a, b, e in VARIANTS.values() if e == "single_threaded"}
    assert single == {(a, b) for a in (False, True) for b in (False, True)}


def test_thread_cpu_is_attributed_to_the_busy_thread() -> None:
    ident: list[int] = []
    stop = threading.Event()

    def busy() -> None:
        ident.append(threading.get_native_id())
        while not stop.is_set():
            sum(range(1000))

    before = thread_cpu_s()
    worker = threading.Thread(target=busy)
    worker.start()
    time.sleep(0.5)
    after = thread_cpu_s()
    stop.set()
    worker.join()
    delta = cpu_delta(before, after)
    # The spinning thread got CPU (at least one clock tick); the sleeping one none to speak of.
    assert delta[ident[0]][1] > 0.0
    assert delta[ident[0]][1] >= delta[threading.get_native_id()][1]
    stats = thread_stats()
    assert threading.get_native_id() in stats and stats[threading.get_native_id()][2] >= 0
