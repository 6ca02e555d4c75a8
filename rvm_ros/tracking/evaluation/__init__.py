"""Tracking evaluation: sequences with exact ground truth, the methods, TAP-Vid metrics.

One home for everything ``rvm-ros eval-tracking`` (:mod:`rvm_ros.bench.tracking`) and the
feature evaluations build on:

* :mod:`.sequence`: the splits, :class:`~.sequence.BenchmarkConfig`,
  :class:`~.sequence.TrackingSequence`, :class:`~.sequence.BenchmarkError`;
* :mod:`.sources`: the real images the sequences are cut from (development, hold-out);
* :mod:`.splits`: :func:`~.splits.make_sequence` / :func:`~.splits.make_sequences`, built
  from :mod:`.camera` (the homography camera path and its exact ground truth),
  :mod:`.occluders`, :mod:`.objects` (things moving on their own) and :mod:`.street`
  (generated street drives);
* :mod:`.tapvid`: the TAP-Vid metrics;
* :mod:`.baselines` and :mod:`.methods`: the reference trackers and one method's run;
* :mod:`.evaluate`: every method over a split, scored; :mod:`.report`: the table.

Nothing is imported here: :mod:`.tapvid` stays light for the replay's ground-truth scoring.
"""

from __future__ import annotations

__all__: list[str] = []
