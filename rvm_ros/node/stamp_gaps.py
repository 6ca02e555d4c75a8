"""Frames missing before the node, counted from gaps in a camera's header stamps."""

from __future__ import annotations

from collections import deque

__all__ = ["StampGapEstimator"]


class StampGapEstimator:
    """Frames missing before the node, counted from gaps in one camera's stamp sequence.

    The camera's frame period is learnt from the stamp intervals themselves: the median of
    the single-period intervals, those shorter than 1.5 times a low percentile (the 10th)
    of the last ``window`` intervals. A plain median would be a multiple of the period
    once more than half the intervals span a lost frame; the low percentile alone is
    biased low by stamp jitter. An interval longer than 1.5 periods counts
    ``round(interval / period) - 1`` missing frames. Stamps that go backwards count none;
    so do intervals longer than ``max_gap_periods`` periods (the camera paused or
    restarted), unless the RMW reported frames of this camera lost in transport within
    the interval (``transport_loss``): then it is a reliable transport stalled on a frame
    it resends (Fast DDS repairs a lost fragment after its writer's next heartbeat, every
    3 s by default) while the camera went on publishing, and it counts up to
    ``max_stall_periods`` periods.

    While the period is being learnt (the first ``min_intervals`` intervals), the
    intervals are kept; once it is learnt, the gaps among them are counted at once,
    exactly once, so a burst in a camera's first frames is not missed.

    Not visible to stamps: frames before the first received one and after the last
    received one (until the next arrives), and frames in a pause longer than
    ``max_gap_periods`` without transport loss.

    Args:
        window: Number of recent intervals the period is taken from.
        min_intervals: Intervals needed before the period is known.
        max_gap_periods: Longest gap, in periods, counted as missing frames.
        max_stall_periods: Longest gap counted when transport lost frames within it.
    """

    def __init__(
        self,
        window: int = 64,
        min_intervals: int = 8,
        max_gap_periods: int = 30,
        max_stall_periods: int = 300,
    ) -> None:
        self._intervals: deque[int] = deque(maxlen=max(window, min_intervals))
        self._min = min_intervals
        self._max_gap = max_gap_periods
        self._max_stall = max(max_stall_periods, max_gap_periods)
        self._last: int | None = None
        self._started = False
        # While learning: indices of the intervals within which transport lost frames.
        self._stalls: set[int] | None = set()

    @property
    def started(self) -> bool:
        """Whether a stamp was recorded (the camera's first frame arrived)."""
        return self._started

    @property
    def period_ns(self) -> int | None:
        """The learnt frame period (ns), or None while it is being learnt."""
        return self._period() if self._stalls is None else None

    def restart(self) -> None:
        """Forget the last stamp: a frame was received but its stamp is not counted (node
        inactive, unreadable message), so the next gap must not count it as missing."""
        self._last = None

    def update(self, stamp_ns: int, transport_loss: bool = False) -> int:
        """Record one received stamp; returns the number of frames newly counted missing.

        Normally the frames missing just before this one; on the update that completes
        the learning, those of every interval kept while learning.

        Args:
            stamp_ns: The frame's header stamp.
            transport_loss: Whether the RMW reported frames of this camera lost in
                transport since the previous received frame.
        """
        last, self._last = self._last, stamp_ns
        self._started = True
        if last is None or stamp_ns <= last:
            return 0
        interval = stamp_ns - last
        self._intervals.append(interval)
        if self._stalls is None:
            return self._missing(interval, self._period(), transport_loss)
        if transport_loss:
            self._stalls.add(len(self._intervals) - 1)
        if len(self._intervals) < self._min:
            return 0
        stalls, self._stalls = self._stalls, None
        period = self._period()
        return sum(self._missing(v, period, i in stalls) for i, v in enumerate(self._intervals))

    def _period(self) -> int:
        """The frame period from the kept intervals (see the class docstring)."""
        ordered = sorted(self._intervals)
        low = ordered[len(ordered) // 10]
        single = [i for i in ordered if 2 * i < 3 * low]
        return single[len(single) // 2]

    def _missing(self, interval: int, period: int, transport_loss: bool) -> int:
        """Frames missing within one interval, at ``period``."""
        longest = self._max_stall if transport_loss else self._max_gap
        if period <= 0 or 2 * interval <= 3 * period or interval > longest * period:
            return 0
        return round(interval / period) - 1
