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
from typing import TYPE_CHECKING, Any

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.errors import RvmRosError

if TYPE_CHECKING:
    from rclpy.node import Node
    from rclpy.publisher import Publisher
    from rclpy.qos import QoSProfile

__all__ = ["PlayError", "PlayStats", "message_type", "play"]

log = logging.getLogger(__name__)

#: Publishers by topic (Any: the message classes are looked up by name at run time).
_Publishers = dict[str, "Publisher[Any]"]


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


def message_type(msgtype: str) -> type:
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
        cls: type = getattr(module, name)
        return cls
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

    if not rate >= 0:
        raise PlayError(f"rate must be >= 0, got {rate}")
    reader = _open_bag(bag, topics)
    chosen = list(reader.topics) if topics is None else list(topics)
    try:
        classes = {t: message_type(reader.topics[t]) for t in chosen}
    except PlayError:
        reader.close()
        raise
    stats = PlayStats(published={t: 0 for t in chosen})
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("rvm_ros_play", context=context)
    try:
        pubs = _publishers(node, classes, _qos(reliable, depth))
        if wait_subscribers > 0:
            _wait_for_subscribers(pubs, wait_subscribers, wait_timeout_s, stop)
        _play_passes(reader, chosen, pubs, rate, loop, stop, on_message, stats)
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


def _open_bag(bag: Path | str, topics: Sequence[str] | None) -> bags.BagReader:
    """The bag's reader, once every chosen topic is known to be in it."""
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
    return reader


def _qos(reliable: bool, depth: int) -> QoSProfile:
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )


def _publishers(node: Node, classes: dict[str, type], qos: QoSProfile) -> _Publishers:
    """One publisher per topic.

    Raises:
        PlayError: a bag topic that is not a valid ROS topic name.
    """
    from rclpy.exceptions import InvalidTopicNameException

    pubs: _Publishers = {}
    for t, cls in classes.items():
        try:
            pubs[t] = node.create_publisher(cls, t, qos)
        except InvalidTopicNameException as exc:
            why = str(exc).splitlines()[0].removeprefix("Invalid topic name: ").rstrip(":")
            raise PlayError(
                f"bag topic {t!r} is not a valid ROS topic name ({why}); "
                "pick the valid ones with --topics"
            ) from None
    return pubs


def _wait_for_subscribers(
    pubs: _Publishers,
    count: int,
    timeout_s: float,
    stop: threading.Event | None,
) -> None:
    """Wait until every publisher has ``count`` subscriptions (warn after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        if all(p.get_subscription_count() >= count for p in pubs.values()):
            return
        time.sleep(0.05)
    log.warning("not every topic has %d subscriber(s); publishing anyway", count)


def _play_passes(
    reader: bags.BagReader,
    chosen: list[str],
    pubs: _Publishers,
    rate: float,
    loop: bool,
    stop: threading.Event | None,
    on_message: Callable[[str, int], None] | None,
    stats: PlayStats,
) -> None:
    """Publish the bag once, or over and over with ``loop``, until done or stopped."""
    while True:
        _play_once(reader, chosen, pubs, rate, stop, on_message, stats)
        stats.read_errors = list(reader.errors)
        if stats.interrupted:
            return
        stats.loops += 1
        if not loop:
            return
        reader.errors.clear()


def _play_once(
    reader: bags.BagReader,
    chosen: list[str],
    pubs: _Publishers,
    rate: float,
    stop: threading.Event | None,
    on_message: Callable[[str, int], None] | None,
    stats: PlayStats,
) -> None:
    """One pass over the bag, paced by the receive stamps (``stats.interrupted`` on a stop)."""
    first_bag: int | None = None
    start = time.monotonic()
    for topic, _msgtype, ts, data in reader.raw_messages(chosen):
        if stop is not None and stop.is_set():
            stats.interrupted = True
            return
        if first_bag is None:
            first_bag = ts
        if rate > 0 and not _wait_until(start + (ts - first_bag) / 1e9 / rate, stop):
            stats.interrupted = True
            return
        pubs[topic].publish(data)
        if on_message is not None:
            on_message(topic, stats.published[topic])
        stats.published[topic] += 1


def _wait_until(due: float, stop: threading.Event | None) -> bool:
    """Sleep until ``due`` (``time.monotonic``); False when ``stop`` was set meanwhile."""
    delay = due - time.monotonic()
    if delay <= 0:
        return True
    if stop is None:
        time.sleep(delay)
        return True
    return not stop.wait(delay)
