"""Tracking work waiting for the tracking thread: at most one frame per camera.

The model step hands each frame's :class:`~rvm_ros.pipeline.types.TrackJob` over with
:meth:`TrackQueue.put` and goes on; the tracking thread takes them with
:meth:`TrackQueue.get`. The queue never grows: a camera whose previous job is still
waiting has it replaced by the new one (the tracker then treats the new frame as one
after a gap, and a state reset carried by the replaced job is carried over), so a slow
tracker costs tracks, never latency or memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Generic, TypeVar

from rvm_ros.pipeline.types import TrackJob

__all__ = ["TrackQueue"]

T = TypeVar("T")


class TrackQueue(Generic[T]):
    """Bounded hand-over of tracking jobs, one slot per camera (thread-safe).

    Each entry is a job with a payload of the caller's (e.g. the result to publish the
    tracks with). Cameras are served in the order their waiting job arrived.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._slots: OrderedDict[str, tuple[TrackJob, T, bool]] = OrderedDict()
        self._dropped: dict[str, int] = {}
        self._closed = False

    def put(self, job: TrackJob, payload: T) -> bool:
        """Queue ``job``; True when it replaced a waiting job of its camera (dropped)."""
        with self._cond:
            old = self._slots.get(job.camera)
            gap = False
            if old is not None:
                gap = True
                self._dropped[job.camera] = self._dropped.get(job.camera, 0) + 1
                if old[0].reset_reason and job.reset_reason in ("", "gap"):
                    job = replace(job, reset_reason=old[0].reset_reason)  # the stronger one
                self._slots[job.camera] = (job, payload, gap)  # keeps its place in line
            else:
                self._slots[job.camera] = (job, payload, False)
            self._cond.notify()
            return gap

    def get(self, timeout: float) -> tuple[TrackJob, T, bool] | None:
        """The oldest waiting ``(job, payload, gap)``, or None after ``timeout`` seconds or
        once closed. ``gap``: earlier jobs of the camera were dropped."""
        with self._cond:
            if not self._slots and not self._closed:
                self._cond.wait(timeout)
            if not self._slots:
                return None
            _, entry = self._slots.popitem(last=False)
            return entry

    def close(self) -> None:
        """Wake a waiting :meth:`get` (it returns what is left, then None)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def clear(self) -> int:
        """Drop every waiting job; how many there were."""
        with self._cond:
            n = len(self._slots)
            self._slots.clear()
            return n

    def __len__(self) -> int:
        with self._cond:
            return len(self._slots)

    @property
    def dropped(self) -> dict[str, int]:
        """Jobs replaced before the tracking thread took them, per camera."""
        with self._cond:
            return dict(self._dropped)
