"""Point tracking on camera images and RVM feature maps, and its evaluation.

* :mod:`.config` (``TrackerConfig``) and :mod:`.factory` (``create_tracker``: the tracker of
  a method); the methods: :mod:`.hybrid`, :mod:`.klt`, :mod:`.propagation`.
* Their parts: :mod:`.image_tracker` (``ImagePointTracker``, the base of ``hybrid`` and
  ``klt``), :mod:`.lucas_kanade` (the pyramidal Lucas-Kanade step with a forward-backward
  check both use), :mod:`.appearance`, :mod:`.motion`; :mod:`.label_propagation`
  (``PointTracker``: label propagation over feature grids, inside ``propagation``) with
  :mod:`.affinity` and :mod:`.heatmap`; :mod:`.queries`, :mod:`.state` (``TrackState``).
* :mod:`.evaluation`: benchmark sequences with exact ground truth, reference trackers,
  TAP-Vid metrics (``rvm-ros eval-tracking``).
"""

from __future__ import annotations

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.label_propagation import PointTracker
from rvm_ros.tracking.state import TrackState

__all__ = ["PointTracker", "TrackState", "TrackerConfig"]
