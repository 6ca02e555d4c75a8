"""The wire format: ``FeatureMap`` / ``TrackedPoints`` messages, both ways.

:mod:`.encode` (processing results -> message fields, filling rclpy or rosbags classes),
:mod:`.decode` (messages -> numpy, for consumers such as planners).
"""

from __future__ import annotations

from rvm_ros.wire.decode import (
    FeatureMapArrays,
    FeatureMapError,
    Tracks,
    dtype_code,
    feature_map_payload,
    feature_map_to_numpy,
    pixel_to_cell,
    tokens,
    tracks_to_numpy,
)
from rvm_ros.wire.encode import (
    DTYPE_FLOAT16,
    DTYPE_FLOAT32,
    MessageFieldError,
    feature_map_fields,
    fill_message,
    payload_bytes,
    tracked_points_fields,
)

__all__ = [
    "DTYPE_FLOAT16",
    "DTYPE_FLOAT32",
    "FeatureMapArrays",
    "FeatureMapError",
    "MessageFieldError",
    "Tracks",
    "dtype_code",
    "feature_map_fields",
    "feature_map_payload",
    "feature_map_to_numpy",
    "fill_message",
    "payload_bytes",
    "pixel_to_cell",
    "tokens",
    "tracked_points_fields",
    "tracks_to_numpy",
]
