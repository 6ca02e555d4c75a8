"""rosbag2 files without a ROS install: read, write, and make bags from videos.

:mod:`.rosbag2` (reader/writer over ``rosbags``, our message types registered from the
``.msg`` text), :mod:`.make_bag` (videos -> a camera bag). Playing a bag over DDS needs
rclpy and lives in :mod:`rvm_ros.node.play`.
"""

from __future__ import annotations

from rvm_ros.bags.rosbag2 import (
    COMPRESSED_IMAGE_TYPE,
    FEATURE_MAP_TYPE,
    IMAGE_TYPE,
    IMAGE_TYPES,
    MSG_NAMES,
    TRACKED_POINT_TYPE,
    TRACKED_POINTS_TYPE,
    BagError,
    BagMessage,
    BagReader,
    BagWriter,
    find_msg_dir,
    image_topics,
    message_class,
    typestore,
)

__all__ = [
    "COMPRESSED_IMAGE_TYPE",
    "FEATURE_MAP_TYPE",
    "IMAGE_TYPE",
    "IMAGE_TYPES",
    "MSG_NAMES",
    "TRACKED_POINTS_TYPE",
    "TRACKED_POINT_TYPE",
    "BagError",
    "BagMessage",
    "BagReader",
    "BagWriter",
    "find_msg_dir",
    "image_topics",
    "message_class",
    "typestore",
]
