"""Publishing a step's results: features at once, tracks and debug images after them.

`Outputs` publishes each `FrameResult` of the inference thread. With deferred tracking
(the node's ``tracking_thread``, `Processor(defer_tracking=True)`) it publishes the
features right away and hands the frame's tracking work to its own tracking thread
through a `TrackQueue` (one waiting frame per camera at most); that thread runs
`Processor.track` and publishes the camera's ``tracks`` and debug image with the frame's
header. Otherwise tracks and debug image go out right after the features, on the calling
thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

import numpy as np
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.lifecycle import LifecyclePublisher
from sensor_msgs.msg import Image

from rvm_ros.msg import FeatureMap, TrackedPoints
from rvm_ros.node.diagnostics import NodeStats
from rvm_ros.pipeline.track_queue import TrackQueue
from rvm_ros.pipeline.types import FrameInput, FrameResult, FrameSkip

if TYPE_CHECKING:
    from rvm_ros.pipeline.processor import Processor
    from rvm_ros.viz.debug import DebugRenderer
    from rvm_ros.wire.encode import FrameResultLike

__all__ = ["CameraIO", "Outputs"]


def _wire(res: FrameResult) -> FrameResultLike:
    """``res`` as the message builders' view of it. A cast: `FrameResult` has every member,
    but as a frozen dataclass its fields are read-only where the Protocol declares plain
    (settable) attributes."""
    return cast("FrameResultLike", res)


@dataclass
class CameraIO:
    """Publishers of one camera."""

    features: LifecyclePublisher[FeatureMap]
    tracks: LifecyclePublisher[TrackedPoints] | None
    debug: LifecyclePublisher[Image] | None


class Outputs:
    """The node's publishing of results (see the module docstring).

    Args:
        io: camera name -> its publishers.
        stats: the node's counters (errors, skips, processed frames).
        logger: the node's logger.
    """

    def __init__(self, io: dict[str, CameraIO], stats: NodeStats, logger: RcutilsLogger) -> None:
        self._io = io
        self._stats = stats
        self._log = logger
        self._renderers: dict[str, DebugRenderer] = {}
        # job -> (the result without tracks, the frame it came from)
        self._queue: TrackQueue[tuple[FrameResult, FrameInput | None]] | None = None
        self._processor: Processor | None = None
        self._stop = threading.Event()
        self.tracking_thread: threading.Thread | None = None
        # (camera, time.monotonic()) of the job the tracking thread works on, else None.
        self._busy: tuple[str, float] | None = None

    # -- tracking thread -------------------------------------------------------------

    def start_tracking(self, processor: Processor) -> None:
        """Track on a thread of our own (``processor`` defers its tracking)."""
        self._processor = processor
        self._queue = TrackQueue()
        self._stop.clear()
        self.tracking_thread = threading.Thread(
            target=self._run_tracking, name="rvm-tracking", daemon=True
        )
        self.tracking_thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the tracking thread (waiting jobs are dropped; safe to call repeatedly).

        A tracker stuck on a frame is not waited for longer than ``timeout_s``: the thread
        is a daemon, and the node must stop promptly on SIGTERM.
        """
        self._stop.set()
        if self._queue is not None:
            self._queue.close()
        if self.tracking_thread is not None:
            self.tracking_thread.join(timeout=timeout_s)
            if self.tracking_thread.is_alive():
                self._log.error(
                    f"tracking thread did not stop within {timeout_s:g} s (stuck tracker); "
                    "left behind"
                )
        self.tracking_thread = None
        self._queue = None

    def tracking_busy(self) -> tuple[str, float] | None:
        """``(camera, seconds)`` the tracking thread has been working on one frame, or None.

        A frame that takes many seconds is a stalled tracker: /diagnostics says ERROR.
        """
        busy = self._busy
        if busy is None or self.tracking_thread is None:
            return None
        return busy[0], time.monotonic() - busy[1]

    def _run_tracking(self) -> None:
        try:
            self._tracking_loop()
        except Exception as exc:  # never die silently
            self._stats.error("tracking_thread_died")
            self._log.error(
                f"the tracking thread stopped: {type(exc).__name__}: {exc}; no tracks will be "
                "published until the node is deactivated and activated again"
            )

    def _tracking_loop(self) -> None:
        queue, processor = self._queue, self._processor
        assert queue is not None and processor is not None
        while not self._stop.is_set():
            entry = queue.get(0.1)
            if entry is None or self._stop.is_set():
                continue
            job, (res, frame), gap = entry
            self._busy = (str(res.camera), time.monotonic())
            try:
                tracks = processor.track(job, gap=gap)
            finally:
                self._busy = None
            if tracks is None:
                continue
            try:
                self._publish_tracks(replace(res, tracks=tracks, track_job=None), frame)
            except Exception as exc:  # keep the thread alive; say what failed, once
                if self._stats.error("publish_error"):
                    self._log.error(
                        f"camera {res.camera}: publishing tracks failed: "
                        f"{type(exc).__name__}: {exc} [logged once; counted in /diagnostics]"
                    )

    # -- publishing ------------------------------------------------------------------

    def publish_result(self, res: FrameResult | FrameSkip, frame: FrameInput | None) -> None:
        """Publish one `FrameResult` (or count one `FrameSkip`) of the inference thread.

        Args:
            res: the result.
            frame: the `FrameInput` it came from (for the debug image), or None.
        """
        from rvm_ros.wire.encode import feature_map_fields, fill_message

        stats = self._stats
        io = self._io.get(res.camera)
        if io is None:
            return
        if isinstance(res, FrameSkip):
            if stats.skipped(res.camera, res.reason, res.detail):
                self._log.warning(
                    f"camera {res.camera}: frame skipped ({res.reason}): {res.detail} "
                    "[each distinct message logged once per diagnostics period; counted in "
                    "/diagnostics]"
                )
            return
        stats.processed(res.camera, res.reset_reason if res.state_reset else None)
        io.features.publish(
            fill_message(FeatureMap, feature_map_fields(_wire(res)), header=res.header)
        )
        if res.track_job is not None and self._queue is not None:
            # the tracks (and the debug image drawn with them) follow from the tracking thread
            if self._queue.put(res.track_job, (res, frame)) and stats.error("tracking_dropped"):
                self._log.warning(
                    f"camera {res.camera}: the tracker falls behind the model step; frames "
                    "are left out of tracking (treated as gaps) [logged once; counted in "
                    "/diagnostics]"
                )
            return
        self._publish_tracks(res, frame)

    def _publish_tracks(self, res: FrameResult, frame: FrameInput | None) -> None:
        from rvm_ros.wire.encode import fill_message, tracked_points_fields

        io = self._io.get(res.camera)
        if io is None:
            return
        if io.tracks is not None and res.tracks is not None:
            io.tracks.publish(
                fill_message(TrackedPoints, tracked_points_fields(_wire(res)), header=res.header)
            )
        if io.debug is not None and frame is not None and io.debug.get_subscription_count() > 0:
            self._publish_debug(io.debug, res, frame)

    def _publish_debug(
        self, pub: LifecyclePublisher[Image], res: FrameResult, frame: FrameInput
    ) -> None:
        from rvm_ros.viz.debug import DebugRenderer

        renderer = self._renderers.get(res.camera)
        if renderer is None or res.state_reset:
            renderer = self._renderers[res.camera] = DebugRenderer(refit_every=100)
        image = frame.image
        if image.dtype != np.uint8:  # float [0, 1] (32FC* encodings)
            image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        tracks = None
        if res.tracks is not None:
            t = res.tracks
            tracks = (t.x, t.y, t.visible, t.ids)
        rgb = renderer.render(
            image, res.features.astype(np.float32), res.geometry, tracks, res.cell_size
        )
        msg = Image()
        msg.header = res.header
        msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
        msg.encoding = "rgb8"
        msg.is_bigendian = 0
        msg.step = int(rgb.shape[1]) * 3
        msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
        pub.publish(msg)
