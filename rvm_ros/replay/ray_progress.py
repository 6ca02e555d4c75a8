"""What a ``--ray`` run shows while it runs: the cluster and its workers on stderr, and one
progress bar over all bags (frames done / total, bags running and queued)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rvm_ros.bags import rosbag2

if TYPE_CHECKING:
    from tqdm import tqdm

    from rvm_ros.replay.ray_cluster import ClusterInfo

__all__ = ["RayProgress", "count_frames"]


class RayProgress:
    """The driver's announcements and progress bar.

    Args:
        announce: Print the cluster, dashboard and workers to stderr.
        progress: Show the progress bar.
    """

    def __init__(self, announce: bool, progress: bool) -> None:
        self.announce = announce
        self.progress = progress
        self.bar: tqdm[NoReturn] | None = None  # tqdm's type of a bar without an iterable

    def cluster(self, info: ClusterInfo, bags: int, started: int, cpus: float, gpus: float) -> None:
        """Announce the cluster, its dashboard, and how the bags are spread."""
        if not self.announce:
            return
        dash = info.get("dashboard")
        if dash and "://" not in dash:
            dash = f"http://{dash}"
        print(
            f"rvm-ros replay: Ray cluster {info.get('address')}"
            + (f", dashboard {dash}" if dash else " (no dashboard)")
            + f"; {bags} bags on {started} workers "
            f"(num_cpus={cpus:g}, num_gpus={gpus:g} each)",
            file=sys.stderr,
        )

    def workers(self, ready: int, started: int, nodes: int, more: bool) -> None:
        """Announce the workers placed so far (``more``: others are still being placed)."""
        if self.announce:
            print(
                f"rvm-ros replay: {ready} of {started} workers ready on "
                f"{nodes} node(s)" + ("; the others join when placed" if more else ""),
                file=sys.stderr,
            )

    def open_bar(self, total_frames: int) -> None:
        """Show the bar (``total_frames`` 0: unknown)."""
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_frames or None,
                desc="replay (ray)",
                unit="frame",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def show(self, frames: int, running: int, queued: int) -> None:
        """Frames done so far, and the bags running and queued."""
        if self.bar is None:
            return
        self.bar.n = frames
        self.bar.set_postfix_str(f"{running} bags running, {queued} queued")
        self.bar.refresh()

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


def count_frames(bags: Sequence[Path]) -> int:
    """Image messages in the bags (the progress bar's total; 0 where unknown)."""
    total = 0
    for bag in bags:
        with contextlib.suppress(Exception), rosbag2.BagReader(bag) as reader:
            images = rosbag2.image_topics(reader.topics)
            total += reader.indexed_count(images)
    return total
