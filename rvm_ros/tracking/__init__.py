"""Point tracking on the feature maps, and TAP-Vid metrics.

:mod:`.config` (``TrackerConfig``), :mod:`.tracker` (``PointTracker``), :mod:`.tapvid`
(TAP-Vid average Jaccard, position accuracy, occlusion accuracy).
"""

from __future__ import annotations

from rvm_ros.tracking.config import TrackerConfig
from rvm_ros.tracking.state import TrackState
from rvm_ros.tracking.tracker import PointTracker

__all__ = ["PointTracker", "TrackState", "TrackerConfig"]
