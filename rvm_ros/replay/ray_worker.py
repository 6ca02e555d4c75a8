"""The Ray actor of ``rvm-ros replay --ray``: the replay stack loaded once, then bag after bag.

Each bag runs through the same job as local runs (:func:`rvm_ros.replay.jobs.run_bag_job`:
staged attempt folder, published only when the replay returns), so the outputs are the
local run's. ``ray`` itself is not imported here: the driver wraps :class:`ReplayWorker`
with ``ray.remote``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import TypedDict

from rvm_ros.replay.encoders import EncoderCache
from rvm_ros.replay.jobs import run_bag_job
from rvm_ros.replay.records import BagSection
from rvm_ros.replay.settings import ReplaySettings

__all__ = ["CONTROL", "ReplayWorker", "WorkerInfo"]

log = logging.getLogger(__name__)

CONTROL = "control"  # the actors' concurrency group of progress() / stop()


class WorkerInfo(TypedDict):
    """Where a worker runs and how long its imports took."""

    host: str
    pid: int
    node_id: str
    node_ip: str
    import_s: float


class ReplayWorker:
    """A Ray actor: the replay stack and model loaded once, then bag after bag.

    ``run`` executes in the actor's default concurrency group (one at a time);
    ``progress`` and ``stop`` in a separate group, so the driver can ask while a bag runs.
    """

    def __init__(self, settings: ReplaySettings) -> None:
        t0 = time.perf_counter()
        import torch  # noqa: F401 - the heavy imports happen once, before the first bag

        import rvm_ros.runtime  # noqa: F401

        self.settings = settings
        self.encoders = EncoderCache()
        self.frames = 0
        self.stopping = threading.Event()
        self.import_s = time.perf_counter() - t0

    def info(self) -> WorkerInfo:
        """Where this worker runs."""
        import ray

        ctx = ray.get_runtime_context()
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "node_id": ctx.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
            "import_s": self.import_s,
        }

    def run(self, bag: str, dest: str, stage: str) -> BagSection:
        """Replay one bag (see :func:`rvm_ros.replay.jobs.run_bag_job`)."""
        self.frames = 0
        if self.stopping.is_set():
            return BagSection(bag=bag, complete=False, error="interrupted", interrupted=True)
        loads = self.encoders.loads
        try:
            section = run_bag_job(
                bag, Path(dest), Path(stage), self.settings, self.encoders, self._count
            )
        except Exception as exc:  # a bug or an I/O failure: the driver may retry it
            log.exception("replay of %s failed", bag)
            error = f"{type(exc).__name__}: {exc}"
            return BagSection(bag=bag, complete=False, error=error, retryable=True)
        section["model_loaded"] = self.encoders.loads > loads
        return section

    def _count(self, n: int) -> None:
        self.frames += n
        if self.stopping.is_set():
            raise KeyboardInterrupt("stopped by the driver")

    def progress(self) -> int:
        """Input frames handled of the current bag."""
        return self.frames

    def stop(self) -> None:
        """Close the current bag like Ctrl-C and take no other."""
        self.stopping.set()
