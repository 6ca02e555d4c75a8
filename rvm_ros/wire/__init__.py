"""The wire format: ``FeatureMap`` / ``TrackedPoints`` / ``SceneTokens`` messages, both ways.

:mod:`.encode` (processing results -> message fields, filling rclpy or rosbags classes),
:mod:`.feature_map_decode` and :mod:`.tracks_decode` (messages -> numpy, for consumers such
as planners), :mod:`.scene_tokens`
(synchronised multi-camera steps -> SceneTokens -> torch).
"""

from __future__ import annotations

from rvm_ros.wire.encode import (
    DTYPE_FLOAT16,
    DTYPE_FLOAT32,
    MessageFieldError,
    feature_map_fields,
    fill_message,
    payload_bytes,
    tracked_points_fields,
)
from rvm_ros.wire.feature_map_decode import (
    FeatureMapArrays,
    FeatureMapError,
    dtype_code,
    feature_map_payload,
    feature_map_to_numpy,
    pixel_to_cell,
    tokens,
)
from rvm_ros.wire.scene_tokens import (
    SceneTokensArrays,
    SceneTokensClasses,
    SceneTokensError,
    scene_tokens_message,
    scene_tokens_to_numpy,
    scene_tokens_to_torch,
)
from rvm_ros.wire.tracks_decode import Tracks, tracks_to_numpy

__all__ = [
    "DTYPE_FLOAT16",
    "DTYPE_FLOAT32",
    "FeatureMapArrays",
    "FeatureMapError",
    "MessageFieldError",
    "SceneTokensArrays",
    "SceneTokensClasses",
    "SceneTokensError",
    "Tracks",
    "dtype_code",
    "feature_map_fields",
    "feature_map_payload",
    "feature_map_to_numpy",
    "fill_message",
    "payload_bytes",
    "pixel_to_cell",
    "scene_tokens_message",
    "scene_tokens_to_numpy",
    "scene_tokens_to_torch",
    "tokens",
    "tracked_points_fields",
    "tracks_to_numpy",
]
