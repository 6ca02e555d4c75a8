"""Image topics -> camera names, and output topic names."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rvm_ros.replay.settings import NODE_NAME

# Image topic suffixes dropped when naming a camera after its topic.
_TOPIC_SUFFIXES = ("/compressed", "/image_raw", "/image_rect", "/image_color", "/image")


def camera_name_from_topic(topic: str) -> str:
    """Camera name for a topic when no config maps it: ``/cameras/bikes/image_raw`` → bikes."""
    name = topic.rstrip("/")
    changed = True
    while changed:
        changed = False
        for suffix in _TOPIC_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                changed = True
    last = name.rsplit("/", 1)[-1] or "camera"
    return sanitize_name(last)


def sanitize_name(name: str) -> str:
    """``name`` as a ROS name part: ``[A-Za-z0-9_]``, starting with a letter (``cam_`` added)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "camera"
    return name if name[0].isalpha() else "cam_" + name


def topic_cameras(topics: Sequence[str]) -> dict[str, str]:
    """Topic → camera name for topics with no config, unique (full path on collisions)."""
    names = {t: camera_name_from_topic(t) for t in topics}
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    return {
        t: (n if counts[n] == 1 else sanitize_name(t.replace("/", "_"))) for t, n in names.items()
    }


def resolve_topic(topic: str, node_name: str = NODE_NAME) -> str:
    """A configured topic as the node would resolve it in the root namespace.

    ``front/image_raw`` → ``/front/image_raw``; ``~/image`` → ``/<node_name>/image``.
    """
    if topic.startswith("~/"):
        return f"/{node_name}/{topic[2:]}"
    return topic if topic.startswith("/") else "/" + topic
