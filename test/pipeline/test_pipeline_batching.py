"""Batching rules: group_batches (offline, on stamps) and LatestFrameSlots (live, threads)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rvm_ros.pipeline import FrameInput, LatestFrameSlots, group_batches

MS = 1_000_000
IMG = np.zeros((2, 2, 3), np.uint8)


def f(cam: str, t_ms: float, header: object = None) -> FrameInput:
    return FrameInput(cam, round(t_ms * MS), header, IMG)


def keys(batches: list[list[FrameInput]]) -> list[list[tuple[str, float]]]:
    return [[(x.camera, x.stamp_ns / MS) for x in b] for b in batches]


# ----------------------------------------------------------------------------- group_batches


def test_frames_within_the_window_form_one_batch() -> None:
    frames = [f("a", 0), f("b", 3), f("c", 5), f("a", 33), f("b", 34), f("c", 45)]
    assert keys(list(group_batches(frames, 5.0))) == [
        [("a", 0), ("b", 3), ("c", 5)],
        [("a", 33), ("b", 34)],
        [("c", 45)],
    ]


def test_a_camera_already_in_the_batch_closes_it() -> None:
    frames = [f("a", 0), f("a", 1), f("b", 1)]
    assert keys(list(group_batches(frames, 100.0))) == [[("a", 0)], [("a", 1), ("b", 1)]]


def test_zero_window_batches_only_equal_stamps() -> None:
    frames = [f("a", 0), f("b", 0), f("c", 0.001), f("a", 10), f("b", 10)]
    assert keys(list(group_batches(frames, 0.0))) == [
        [("a", 0), ("b", 0)],
        [("c", 0.001)],
        [("a", 10), ("b", 10)],
    ]


def test_order_is_kept_so_time_going_backwards_stays_visible() -> None:
    # a looped bag: stamps jump back; slightly out-of-order cameras still batch
    frames = [f("a", 100), f("b", 98), f("a", 133), f("a", 0), f("b", 1)]
    assert keys(list(group_batches(frames, 5.0))) == [
        [("a", 100), ("b", 98)],
        [("a", 133)],
        [("a", 0), ("b", 1)],
    ]


def test_span_not_distance_to_first() -> None:
    # b at -4 and c at +4 are each within 5 ms of a, but span 8 ms together
    frames = [f("a", 10), f("b", 6), f("c", 14)]
    assert keys(list(group_batches(frames, 5.0))) == [[("a", 10), ("b", 6)], [("c", 14)]]


def test_max_batch() -> None:
    frames = [f(c, 0) for c in "abcde"]
    assert [len(b) for b in group_batches(frames, 5.0, max_batch=2)] == [2, 2, 1]


def test_headers_pass_through_and_input_is_consumed_lazily() -> None:
    def endless() -> Iterator[FrameInput]:
        for i in itertools.count():
            yield f("ab"[i % 2], (i // 2) * 40.0, header=i)

    first = list(itertools.islice(group_batches(endless(), 5.0), 3))
    assert [[x.header for x in b] for b in first] == [[0, 1], [2, 3], [4, 5]]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="max_wait_ms must be a finite number >= 0, got -1"):
        list(group_batches([], -1))
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        list(group_batches([], 5.0, max_batch=0))
    assert list(group_batches([], 5.0)) == []


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 200)), max_size=40),
    st.floats(0, 50),
)
def test_batching_rule_properties(pairs: list[tuple[str, int]], wait_ms: float) -> None:
    frames = [f(c, t) for c, t in pairs]
    batches = list(group_batches(frames, wait_ms))
    again = list(group_batches([f(c, t) for c, t in pairs], wait_ms))
    assert keys(batches) == keys(again)  # deterministic
    assert [x for b in batches for x in b] == frames  # every frame once, in order
    span = round(wait_ms * MS)
    for b in batches:
        assert b
        assert len({x.camera for x in b}) == len(b)
        stamps = [x.stamp_ns for x in b]
        assert max(stamps) - min(stamps) <= span
    # maximal: the next frame could not have joined
    for b, nxt in itertools.pairwise(batches):
        x = nxt[0]
        stamps = [y.stamp_ns for y in b] + [x.stamp_ns]
        assert x.camera in {y.camera for y in b} or max(stamps) - min(stamps) > span


# ----------------------------------------------------------------------------- LatestFrameSlots


def test_newest_frame_wins_and_drops_are_counted() -> None:
    slots = LatestFrameSlots(["a", "b"])
    assert slots.put(f("a", 1)) is False
    assert slots.put(f("a", 2)) is True
    assert slots.put(f("a", 3)) is True
    assert slots.put(f("b", 1)) is False
    batch = slots.wait_batch(0.0)
    assert [(x.camera, x.stamp_ns // MS) for x in batch] == [("a", 3), ("b", 1)]
    c = slots.counters()
    assert (c["a"].received, c["a"].dropped, c["a"].taken) == (3, 2, 1)
    assert (c["b"].received, c["b"].dropped, c["b"].taken) == (1, 0, 1)
    assert slots.dropped == {"a": 2, "b": 0}
    assert slots.pending() == 0


def test_camera_order_is_configured_order() -> None:
    slots = LatestFrameSlots(["a", "b"])
    slots.put(f("b", 1))
    slots.put(f("x", 1))  # not configured: still delivered (the processor skips it)
    slots.put(f("a", 1))
    assert [x.camera for x in slots.wait_batch(0.0)] == ["a", "b", "x"]


def test_waits_for_the_other_cameras_within_the_window() -> None:
    slots = LatestFrameSlots(["a", "b"])
    slots.put(f("a", 1))

    def late() -> None:
        time.sleep(0.05)
        slots.put(f("b", 1))

    t = threading.Thread(target=late)
    t.start()
    batch = slots.wait_batch(5.0)  # returns as soon as b is there, not after 5 s
    t.join()
    assert [x.camera for x in batch] == ["a", "b"]


def test_returns_without_the_missing_camera_after_the_window() -> None:
    slots = LatestFrameSlots(["a", "b"])
    slots.put(f("a", 1))
    assert [x.camera for x in slots.wait_batch(0.02)] == ["a"]


def test_blocks_until_a_frame_and_honours_stop_and_timeout() -> None:
    slots = LatestFrameSlots(["a"], poll_s=0.01)
    assert slots.wait_batch(0.0, timeout_s=0.02) == []
    stop = threading.Event()
    got: list[list[FrameInput]] = []
    t = threading.Thread(target=lambda: got.append(slots.wait_batch(0.0, stop)))
    t.start()
    stop.set()
    slots.wake()
    t.join(timeout=10)
    assert not t.is_alive() and got == [[]]
    # a frame wakes a blocked worker
    t = threading.Thread(target=lambda: got.append(slots.wait_batch(0.0)))
    t.start()
    slots.put(f("a", 7))
    t.join(timeout=10)
    assert not t.is_alive() and [x.stamp_ns for x in got[1]] == [7 * MS]


def test_unconfigured_slots_wait_for_every_camera_seen() -> None:
    slots = LatestFrameSlots()
    slots.put(f("a", 1))
    slots.put(f("b", 1))
    assert len(slots.wait_batch(0.0)) == 2
    slots.put(f("b", 2))
    # a has been seen: wait (briefly) for it
    assert [x.camera for x in slots.wait_batch(0.02)] == ["b"]


def test_drop_accounting_under_threads() -> None:
    """Two fast producers, one slow consumer: nothing lost, nothing duplicated."""
    slots = LatestFrameSlots(["a", "b"], poll_s=0.005)
    n = 400
    stop = threading.Event()
    taken: list[FrameInput] = []
    reported_drops = {"a": 0, "b": 0}

    def producer(cam: str) -> None:
        for i in range(n):
            if slots.put(f(cam, i)):
                reported_drops[cam] += 1
            if i % 50 == 0:
                time.sleep(0.001)

    def consumer() -> None:
        while not stop.is_set() or slots.pending():
            batch = slots.wait_batch(0.001, stop)
            taken.extend(batch)
            time.sleep(0.002)  # a "slow model"

    threads = [threading.Thread(target=producer, args=(c,)) for c in "ab"]
    worker = threading.Thread(target=consumer)
    worker.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    slots.wake()
    worker.join(timeout=30)
    assert not worker.is_alive()
    counters = slots.counters()
    for cam in "ab":
        mine = [x.stamp_ns // MS for x in taken if x.camera == cam]
        c = counters[cam]
        assert c.received == n
        assert c.taken == len(mine)
        assert c.dropped == reported_drops[cam] == n - len(mine)
        assert mine == sorted(set(mine))  # newest-first never goes back, no duplicates
        assert mine[-1] == n - 1  # the newest frame is always eventually processed
    assert any(c.dropped for c in counters.values())  # the consumer was slower
