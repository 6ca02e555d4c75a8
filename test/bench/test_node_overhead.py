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
    assert VARIANTS["ordinary"] == (False, False, "single_threaded", 0)  # before issue 17
    assert VARIANTS["raw"] == (True, True, "single_threaded", 0)  # before issue 26
    assert VARIANTS["events"] == (True, True, "events", 0)  # issue 26's executor
    assert VARIANTS["default"] == (True, True, "events", 1)  # the node's defaults
    single = {(a, b) for a, b, e, _ in VARIANTS.values() if e == "single_threaded"}
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


def test_frames_sent_are_split_by_cause_and_the_unaccounted_ones_counted() -> None:
    from rvm_ros.bench.node_overhead_figures import counter_figures
    from rvm_ros.node.diagnostics import CameraCounters

    # 100 sent: 60 received (40 processed, 20 replaced), 25 lost in transport, 10
    # overwritten in the queue (35 missing from stamps), 5 the node cannot see.
    cam = CameraCounters(received=60, processed=40, dropped=20, lost=25, missing=35)
    figures = counter_figures([cam], sent=100)
    assert figures["frames_unaccounted"] == 5
    assert figures["frames_neither_processed_nor_lost"] == 100 - 40 - 25
    assert figures["frames_not_processed_by_cause"] == {
        "replaced_by_newer": 20,
        "overwritten_in_queue": 10,
    }
    assert figures["drops_equal_not_processed"] and figures["node_in_flight"] == 0


def test_frames_no_stamp_gap_can_show_are_reported() -> None:
    from rvm_ros.bench.node_overhead import _edge_figures

    sent = {("a", i): 0.0 for i in range(100)}
    seen = {("a", i): 0.0 for i in range(2, 95) if not 40 <= i < 75}  # 35 unseen in a row
    figures = _edge_figures(sent, seen)
    assert figures == {
        "sent_before_first_received": 2,
        "sent_after_last_received": 5,
        "longest_unseen_run": 35,
        "sent_in_unseen_runs_over_30": 35,
    }
