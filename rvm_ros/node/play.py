"""Publish a bag's messages over DDS at the recorded rate (``rvm-ros play``).

For driving the live node where ``ros2 bag`` is not installed: every topic of the bag
(or the chosen ones) gets an rclpy publisher of its type, and the recorded CDR bytes are
published unchanged (no decode / re-encode), spaced by the bag's receive time stamps
divided by ``rate``. Header stamps are the recorded ones, so a looped bag goes back in
time (the node resets its state with ``time_backwards``).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.errors import RvmRosError

log = logging.getLogger(__name__)


class PlayError(RvmRosError):
    """The bag cannot be played (unreadable, unknown message type, bad arguments)."""

    cause = "play_failed"


@dataclass
class PlayStats:
    """What :func:`play` published.

    Attributes:
        published: messages published per topic.
        loops: passes over the bag completed.
        read_errors: what could not be read from the bag.
        interrupted: stopped by Ctrl-C or the stop event before the end.
    """

    published: dict[str, int] = field(default_factory=dict)
    loops: int = 0
    read_errors: list[str] = field(default_factory=list)
    interrupted: bool = False


def message_type(msgtype: str) -> Any:
    """The rclpy (rosidl-generated) class of ``"pkg/msg/Name"``.

    Raises:
        PlayError: the package's Python messages are not installed.
    """
    parts = msgtype.split("/")
    if len(parts) != 3:
        raise PlayError(f"unexpected message type name {msgtype!r}")
    pkg, kind, name = parts
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise PlayError(
            f"no Python message class for {msgtype} (is the {pkg} package installed and "
            f"sourced?): {exc}"
        ) from exc


def play(
    bag: Path | str,
    rate: float = 1.0,
    loop: bool = False,
    topics: Sequence[str] | None = None,
    reliable: bool = True,
    depth: int = 100,
    wait_subscribers: int = 0,
    wait_timeout_s: float = 10.0,
    stop: threading.Event | None = None,
    on_message: Callable[[str, int], None] | None = None,
) -> PlayStats:
    """Publish the messages of ``bag`` over DDS, paced by their recorded times.

    Args:
        bag: rosbag2 folder (or bare ``.mcap`` / ``.db3``).
        rate: playback speed factor (2.0: twice as fast); ``0`` publishes back to back.
        loop: start over at the end until interrupted.
        topics: topics to publish (all when None).
        reliable: reliable QoS (else best effort); history ``depth``.
        depth: publisher history depth.
        wait_subscribers: before publishing, wait until every publisher has at least this
            many matched subscriptions (up to ``wait_timeout_s``).
        wait_timeout_s: how long to wait for subscribers.
        stop: set it to stop early (another thread).
        on_message: called with ``(topic, index)`` after each publish.

    Returns:
        Counts per topic and loops; ``interrupted`` when stopped early.

    Raises:
        PlayError: unreadable bag, unknown topic or message type, bad rate.
    """
    import rclpy
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    if not rate >= 0:
        raise PlayError(f"rate must be >= 0, got {rate}")
    try:
        reader = bags.BagReader(Path(bag))
    except bags.BagError as exc:
        raise PlayError(str(exc)) from exc
    chosen = list(reader.topics) if topics is None else list(topics)
    missing = [t for t in chosen if t not in reader.topics]
    if missing:
        reader.close()
        raise PlayError(
            f"topic(s) {', '.join(missing)} not in {bag} (has: {', '.join(reader.topics)})"
        )
    classes = {t: message_type(reader.topics[t]) for t in chosen}
    stats = PlayStats(published={t: 0 for t in chosen})
    qos = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("rvm_ros_play", context=context)
    try:
        pubs = {}
        for t in chosen:
            try:
                pubs[t] = node.create_publisher(classes[t], t, qos)
            except InvalidTopicNameException as exc:
                why = str(exc).splitlines()[0].removeprefix("Invalid topic name: ").rstrip(":")
                raise PlayError(
                    f"bag topic {t!r} is not a valid ROS topic name ({why}); "
                    "pick the valid ones with --topics"
                ) from None
        if wait_subscribers > 0:
            deadline = time.monotonic() + wait_timeout_s
            while time.monotonic() < deadline and not (stop and stop.is_set()):
                if all(p.get_subscription_count() >= wait_subscribers for p in pubs.values()):
                    break
                time.sleep(0.05)
            else:
                log.warning(
                    "not every topic has %d subscriber(s); publishing anyway", wait_subscribers
                )
        while True:
            first_bag: int | None = None
            start = time.monotonic()
            for topic, _msgtype, ts, data in reader.raw_messages(chosen):
                if stop is not None and stop.is_set():
                    stats.interrupted = True
                    break
                if first_bag is None:
                    first_bag = ts
                if rate > 0:
                    due = start + (ts - first_bag) / 1e9 / rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        if stop is not None:
                            if stop.wait(delay):
                                stats.interrupted = True
                                break
                        else:
                            time.sleep(delay)
                pubs[topic].publish(data)
                if on_message is not None:
                    on_message(topic, stats.published[topic])
                stats.published[topic] += 1
            stats.read_errors = list(reader.errors)
            if stats.interrupted:
                break
            stats.loops += 1
            if not loop:
                break
            reader.errors.clear()
        if reliable:  # let late readers get what was sent before the node goes away
            from rclpy.duration import Duration

            for pub in pubs.values():
                pub.wait_for_all_acked(Duration(seconds=2.0))
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        reader.close()
        node.destroy_node()
        context.try_shutdown()
    return stats
