"""Which frames run together in one batched encoder step.

Two rules, one per setting:

* `group_batches` (offline, bag replay): a deterministic rule on the frames' stamps.
* `LatestFrameSlots` (live node): keeps only the newest frame per camera and collects
  the cameras that deliver within ``max_batch_wait_ms`` of the first one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rvm_ros.pipeline.types import FrameInput

__all__ = ["LatestFrameSlots", "SlotCounters", "group_batches"]


def group_batches(
    frames: Iterable[FrameInput], max_wait_ms: float, max_batch: int | None = None
) -> Iterator[list[FrameInput]]:
    """Group frames into batches for `Processor.process` (the offline batching rule).

    Frames are taken in the order given (a bag's log order) and never reordered, so a
    stamp going backwards (a looped recording) still reaches the processor as such.
    A frame joins the open batch unless

    * its camera already has a frame in the batch,
    * the stamps of the batch plus this frame would span more than ``max_wait_ms``
      (``max(stamp) - min(stamp)``; ``0`` batches only equal stamps), or
    * the batch already holds ``max_batch`` frames;

    then the open batch is yielded and a new one starts with this frame. The result
    depends only on the sequence of (camera, stamp) pairs: deterministic. Works lazily
    on any iterable (memory: one batch).

    Args:
        frames: Frames in processing order.
        max_wait_ms: Largest stamp span of a batch in milliseconds (>= 0).
        max_batch: Largest batch size, or None for no limit beyond one frame per camera.

    Yields:
        Non-empty lists of frames, at most one per camera, in input order.

    Raises:
        ValueError: For a negative / non-finite ``max_wait_ms`` or ``max_batch`` < 1.
    """
    if not math.isfinite(max_wait_ms) or max_wait_ms < 0:
        raise ValueError(f"max_wait_ms must be a finite number >= 0, got {max_wait_ms!r}")
    if max_batch is not None and max_batch < 1:
        raise ValueError(f"max_batch must be >= 1 or None, got {max_batch!r}")
    span_ns = round(max_wait_ms * 1e6)
    batch: list[FrameInput] = []
    cameras: set[str] = set()
    lo = hi = 0
    for frame in frames:
        stamp = int(frame.stamp_ns)
        if batch and (
            frame.camera in cameras
            or max(hi, stamp) - min(lo, stamp) > span_ns
            or (max_batch is not None and len(batch) >= max_batch)
        ):
            yield batch
            batch, cameras = [], set()
        if not batch:
            lo = hi = stamp
        else:
            lo, hi = min(lo, stamp), max(hi, stamp)
        batch.append(frame)
        cameras.add(frame.camera)
    if batch:
        yield batch


@dataclass
class SlotCounters:
    """Counters of one camera's slot.

    Attributes:
        received: Frames put.
        dropped: Frames replaced by a newer one before they were taken (never processed).
        taken: Frames handed out by `LatestFrameSlots.wait_batch`.
    """

    received: int = 0
    dropped: int = 0
    taken: int = 0


class LatestFrameSlots:
    """Thread-safe holder of the newest unprocessed frame of each camera (live node).

    Subscriber callbacks `put` frames; one worker thread takes batches with
    `wait_batch`. A camera holds at most one frame: a newer frame replaces an untaken
    one, which counts as a drop. Memory is bounded by the number of cameras.

    Invariant: ``received == taken + dropped + (1 if a frame is waiting else 0)``.

    Args:
        cameras: The cameras expected in a batch. `wait_batch` waits for these (up to
            its window); when empty, it waits for every camera seen so far.
        poll_s: How often a waiting `wait_batch` checks its ``stop_event``.
    """

    def __init__(self, cameras: Iterable[str] = (), poll_s: float = 0.05) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._order: list[str] = []
        self._expected: set[str] = set()
        self._fixed = False
        for cam in cameras:
            if cam not in self._expected:
                self._order.append(cam)
                self._expected.add(cam)
                self._fixed = True
        self._slots: dict[str, FrameInput] = {}
        self._since: float | None = None  # monotonic time the first waiting frame came
        self._counters: dict[str, SlotCounters] = {c: SlotCounters() for c in self._order}
        self._poll_s = poll_s

    def put(self, frame: FrameInput) -> bool:
        """Store ``frame`` as its camera's newest frame and wake the worker.

        Args:
            frame: The frame.

        Returns:
            True when it replaced an untaken frame of the same camera (a drop).
        """
        with self._cond:
            cam = frame.camera
            counters = self._counters.get(cam)
            if counters is None:
                counters = self._counters[cam] = SlotCounters()
                self._order.append(cam)
                if not self._fixed:
                    self._expected.add(cam)
            counters.received += 1
            dropped = cam in self._slots
            if dropped:
                counters.dropped += 1
            if not self._slots:
                self._since = time.monotonic()
            self._slots[cam] = frame
            self._cond.notify_all()
            return dropped

    def wait_batch(
        self,
        max_wait_s: float,
        stop_event: threading.Event | None = None,
        timeout_s: float | None = None,
    ) -> list[FrameInput]:
        """Take the waiting frames as one batch.

        Blocks until at least one frame waits, then until every expected camera has
        one or ``max_wait_s`` has passed since the first waiting frame arrived (so a
        frame that waited during a long step is taken at once). Takes and clears them.

        Args:
            max_wait_s: Batching window in seconds.
            stop_event: When set, returns promptly (``[]`` if nothing waits yet).
            timeout_s: Give up waiting for a first frame after this long (``[]``).

        Returns:
            At most one frame per camera, in camera order (configured, then first seen).
        """
        end = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._slots:
                if stop_event is not None and stop_event.is_set():
                    return []
                wait = self._poll_s if stop_event is not None else None
                if end is not None:
                    left = end - time.monotonic()
                    if left <= 0:
                        return []
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)
            assert self._since is not None
            deadline = self._since + max(0.0, max_wait_s)
            while not self._expected.issubset(self._slots):
                if stop_event is not None and stop_event.is_set():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, self._poll_s) if stop_event is not None else left)
            batch = [self._slots[c] for c in self._order if c in self._slots]
            for frame in batch:
                self._counters[frame.camera].taken += 1
            self._slots.clear()
            self._since = None
            return batch

    def wake(self) -> None:
        """Wake a waiting `wait_batch` (call after setting its ``stop_event``)."""
        with self._cond:
            self._cond.notify_all()

    def pending(self) -> int:
        """Number of frames waiting."""
        with self._cond:
            return len(self._slots)

    def counters(self) -> dict[str, SlotCounters]:
        """A snapshot of the per-camera counters."""
        with self._cond:
            return {
                c: SlotCounters(v.received, v.dropped, v.taken) for c, v in self._counters.items()
            }

    @property
    def dropped(self) -> dict[str, int]:
        """Dropped frames per camera (snapshot)."""
        with self._cond:
            return {c: v.dropped for c, v in self._counters.items()}
