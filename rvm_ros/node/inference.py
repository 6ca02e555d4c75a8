"""The node's active state: runtime, processor, frame slots, outputs and the inference thread.

`InferenceRuntime.load` creates what ``on_activate`` needs (the encoder of the configured
backend, the `Processor`, the `LatestFrameSlots`, the `Outputs` with their tracking
thread); `start` runs the inference loop on a thread of its own: take a batch of the
newest frames, run ``Processor.process``, publish each result and the scene tokens.
`stop` ends the thread, counts the frames still waiting (``stopped_unprocessed`` in
/diagnostics) and releases the runtime.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rclpy.impl.rcutils_logger import RcutilsLogger

from rvm_ros.node.diagnostics import NodeStats
from rvm_ros.node.outputs import CameraIO, Outputs
from rvm_ros.pipeline.batching import LatestFrameSlots
from rvm_ros.pipeline.params import NodeConfig
from rvm_ros.pipeline.processor import Processor
from rvm_ros.pipeline.types import FrameInput, FrameResult, FrameSkip
from rvm_ros.runtime.base import Encoder

if TYPE_CHECKING:
    from rvm_ros.node.scene_tokens import SceneTokensIO

__all__ = ["ActivationError", "InferenceRuntime"]

#: Step failures logged one by one; later ones are only counted.
_LOGGED_STEP_FAILURES = 5


class ActivationError(Exception):
    """The runtime or the processor cannot be created; the message says which and why."""


class InferenceRuntime:
    """Everything the active node holds, and its inference thread (see the module docstring).

    Args:
        cfg: The node's configuration.
        encoder: The loaded runtime (Any: each backend's recurrent state is its own type).
        processor: The processing core around ``encoder``.
        outputs: The publishing of results.
        stats: The node's counters.
        scene: The scene-token output, when enabled.
        logger: The node's logger.
    """

    def __init__(
        self,
        cfg: NodeConfig,
        encoder: Encoder[Any],  # Any: each backend's recurrent state is its own type
        processor: Processor,
        outputs: Outputs,
        stats: NodeStats,
        scene: SceneTokensIO | None,
        logger: RcutilsLogger,
    ) -> None:
        self.encoder = encoder
        self.processor = processor
        self.slots = LatestFrameSlots(cfg.cameras)
        self.outputs = outputs
        self._stats = stats
        self._scene = scene
        self._log = logger
        self._wait_s = cfg.processing.max_batch_wait_ms / 1000.0
        self._stop = threading.Event()
        self._step_failures = 0
        self.thread: threading.Thread | None = None
        info = encoder.info
        #: What runs the model, for the log and /diagnostics.
        self.description = (
            f"{info.backend} {info.precision} on {info.device}, model {info.model_id}, "
            f"input {info.height}x{info.width} ({info.reason})"
        )

    @classmethod
    def load(
        cls,
        cfg: NodeConfig,
        io: dict[str, CameraIO],
        stats: NodeStats,
        scene: SceneTokensIO | None,
        logger: RcutilsLogger,
    ) -> InferenceRuntime:
        """Create the runtime of ``cfg`` and everything around it (the thread not started).

        Raises:
            ActivationError: The runtime or the processor cannot be created.
        """
        from rvm_ros.runtime import create_encoder

        pc = cfg.processing
        try:
            encoder = create_encoder(
                cfg.checkpoint,
                backend=cfg.backend,
                precision=cfg.precision,
                device=cfg.device or None,
                height=pc.model_height,
                width=pc.model_width,
                max_batch=len(cfg.cameras),
                tensorrt_options={"accept_build_error": cfg.tensorrt_accept_build_error},
            )
        except Exception as exc:  # the message names the checkpoint / backend problem
            raise ActivationError(f"cannot load the runtime: {type(exc).__name__}: {exc}") from exc
        try:
            processor = Processor(pc, encoder, defer_tracking=cfg.tracking_thread)
        except Exception as exc:
            encoder.close()
            raise ActivationError(
                f"cannot create the processor: {type(exc).__name__}: {exc}"
            ) from exc
        outputs = Outputs(io, stats, logger)
        return cls(cfg, encoder, processor, outputs, stats, scene, logger)

    def start(self) -> None:
        """Start the tracking thread (deferred tracking) and the inference thread."""
        self._stop.clear()
        if self.processor.defer_tracking:
            self.outputs.start_tracking(self.processor)
        self.thread = threading.Thread(target=self._run, name="rvm-inference", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop both threads, count the frames still waiting as stopped unprocessed (not as
        replaced by a newer frame: none came), close the runtime."""
        self._stop.set()
        self.slots.wake()
        if self.thread is not None:
            self.thread.join(timeout=30.0)
            if self.thread.is_alive():
                self._log.error("inference thread did not stop within 30 s")
        self.thread = None
        self.outputs.stop()
        # Frames still waiting are never processed: counted as stopped unprocessed.
        for cam, c in self.slots.counters().items():
            pending = c.received - c.taken - c.dropped
            if pending > 0 and cam in self._stats.cameras:
                self._stats.stopped(cam, pending)
        self.encoder.close()

    # -- the inference thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # never die silently: say so in the log and diagnostics
            self._stats.error("inference_thread_died")
            self._log.error(
                f"the inference thread stopped: {type(exc).__name__}: {exc}; no frames will be "
                "processed until the node is deactivated and activated again"
            )

    def _loop(self) -> None:
        while not self._stop.is_set():
            batch = self.slots.wait_batch(self._wait_s, self._stop)
            if not batch or self._stop.is_set():
                continue
            results = self._step(batch)
            if results is not None:
                self._publish(results, batch)

    def _step(self, batch: list[FrameInput]) -> list[FrameResult | FrameSkip] | None:
        """One processing step (None when it failed: logged, then counted)."""
        t0 = time.perf_counter()
        try:
            results = self.processor.process(batch)
        except Exception as exc:
            self._step_failures += 1
            if self._step_failures <= _LOGGED_STEP_FAILURES:
                last = self._step_failures == _LOGGED_STEP_FAILURES
                self._log.error(
                    f"processing step failed for cameras "
                    f"{[f.camera for f in batch]}: {type(exc).__name__}: {exc}"
                    + (" [further failures are only counted]" if last else "")
                )
            for f in batch:
                self._stats.skipped(f.camera, "step_error")
            return None
        self._stats.step(time.perf_counter() - t0, len(batch))
        return results

    def _publish(
        self, results: Sequence[FrameResult | FrameSkip], batch: Sequence[FrameInput]
    ) -> None:
        stats = self._stats
        frames = {f.camera: f for f in batch}
        for res in results:
            try:
                self.outputs.publish_result(res, frames.get(res.camera))
            except Exception as exc:  # keep the thread alive; say what failed, once
                if stats.error("publish_error"):
                    self._log.error(
                        f"camera {res.camera}: publishing the result failed: "
                        f"{type(exc).__name__}: {exc} [logged once; counted in /diagnostics]"
                    )
        if self._scene is None:
            return
        try:
            self._scene.publish_step(results, batch)
        except Exception as exc:
            if stats.error("scene_tokens_error"):
                self._log.error(
                    f"publishing scene tokens failed: {type(exc).__name__}: {exc} "
                    "[logged once; counted in /diagnostics]"
                )
