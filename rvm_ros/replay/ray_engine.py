"""Bags replayed on a Ray cluster (``rvm-ros replay BAG... --ray [ADDRESS]``).

The unit of work is one bag: it runs in order on one worker, so every camera's
recurrent state is carried exactly as in a local run. Workers are Ray actors
(:class:`.ray_worker.ReplayWorker`) that import the stack and load the model once,
then take bag after bag through the same job as local runs
(:func:`rvm_ros.replay.jobs.run_bag_job`: staged attempt folder, published only when
the replay returns), so the outputs are the local run's. Each worker declares
``num_cpus`` (and ``num_gpus``, fractional so several share a GPU); the driver hands a
worker its next bag only when it is idle, so no worker holds more than the one bag it
runs (bounded backpressure, nothing queued on a worker that could die with it).

Faults: a worker that dies mid-bag (its process or its node) is replaced and the bag
is retried on another worker up to ``retries`` times; its staging folder is removed, so
no partial output ever looks complete. A bag the replay refuses (a bad bag) is reported
with its error at once; other bags go on. Ctrl-C asks every worker to stop: each closes
its bag like a local Ctrl-C, the bags that finished stay, and ``--resume`` continues.

This module is the driver (:func:`run_on_ray`); the options and the cluster connection
are :mod:`.ray_cluster`, the actor :mod:`.ray_worker`, the report entry :mod:`.ray_report`.
``ray`` is an optional dependency (``pip install rvm_ros[ray]``).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from rvm_ros.replay.jobs import attempt_tag, remove_tree, stage_for
from rvm_ros.replay.ray_cluster import ClusterInfo, RayOptions, connect, import_ray
from rvm_ros.replay.ray_progress import RayProgress, count_frames
from rvm_ros.replay.ray_worker import CONTROL, ReplayWorker, WorkerInfo
from rvm_ros.replay.records import BagSection
from rvm_ros.replay.settings import ReplayError, ReplaySettings

__all__ = ["run_on_ray"]

log = logging.getLogger(__name__)


def run_on_ray(
    jobs: Sequence[tuple[int, Path, Path]],
    root: Path,
    settings: ReplaySettings,
    options: RayOptions,
    finished: Callable[[int, BagSection], None],
    info: ClusterInfo | None = None,
) -> bool:
    """Replay ``jobs`` (index, bag, output folder) on Ray; calls ``finished`` per bag.

    Args:
        jobs: The bags to run, each with its index and final folder.
        root: The run's (partial) folder; staging folders go there.
        settings: What to run (the workers' progress bars are off).
        options: Cluster and worker options.
        finished: Called once per bag with its final section (never twice).
        info: Filled with what the report says about the cluster.

    Returns:
        Whether the run was interrupted (Ctrl-C / SIGTERM).

    Raises:
        RayUnavailable: ``ray`` is not installed.
        ReplayError: The cluster cannot be reached or no worker can be placed.
    """
    ray = import_ray()
    info = info if info is not None else {}
    owned = connect(ray, options, info)
    driver = _Driver(ray, jobs, root, settings, options, finished, info)
    try:
        return driver.run()
    finally:
        driver.close()
        if owned:
            ray.shutdown()


@dataclass(frozen=True)
class _Job:
    """A bag running on a worker: its index, result ref, start time, stage and attempt."""

    index: int
    ref: object  # the ObjectRef of ReplayWorker.run
    t0: float
    stage: Path
    attempt: int


@dataclass
class _Slot:
    """One live actor as the driver sees it."""

    actor: Any  # Any: a Ray actor handle; its remote methods exist only at run time
    info: WorkerInfo
    job: _Job | None = None

    @property
    def where(self) -> str:
        return f"{self.info['host']}:{self.info['pid']}"


class _Driver:
    """Hands bags to idle workers, retries the bags of dead ones, reports progress."""

    def __init__(
        self,
        ray: ModuleType,
        jobs: Sequence[tuple[int, Path, Path]],
        root: Path,
        settings: ReplaySettings,
        options: RayOptions,
        finished: Callable[[int, BagSection], None],
        info: ClusterInfo,
    ) -> None:
        self.ray = ray
        self.jobs = {i: (bag, dest) for i, bag, dest in jobs}
        self.queue: collections.deque[tuple[int, int]] = collections.deque(
            (i, 1) for i, _bag, _dest in jobs
        )
        self.root = root
        self.settings = settings
        self.options = options
        self.finished = finished
        self.info = info
        self.errors: dict[int, list[str]] = {i: [] for i in self.jobs}
        self.slots: list[_Slot] = []
        self.starting: dict[object, Any] = {}  # info() ref -> actor being placed (Any: as _Slot)
        self.started = 0
        self.deaths: list[str] = []
        self.done_frames = 0
        self.total_frames = count_frames([bag for bag, _dest in self.jobs.values()])
        cpus, gpus = options.resources(settings)
        self.cpus, self.gpus = cpus, gpus
        worker_settings = _replace_progress(settings)
        remote = ray.remote(
            num_cpus=cpus,
            num_gpus=gpus,
            max_restarts=0,
            concurrency_groups={CONTROL: 1},
            scheduling_strategy="SPREAD",
        )(ReplayWorker)
        self.new_actor = lambda: remote.remote(worker_settings)
        self.display = RayProgress(options.announce, options.progress)
        self.stopping = False

    # ------------------------------------------------------------------ setup
    def _wanted(self) -> int:
        if self.options.workers is not None:
            return max(1, min(self.options.workers, len(self.jobs)))
        res = self.ray.cluster_resources()
        fit = int(res.get("CPU", 1) // self.cpus) if self.cpus > 0 else len(self.jobs)
        if self.gpus > 0:
            fit = min(fit, int(res.get("GPU", 0) // self.gpus))
        return max(1, min(fit, len(self.jobs)))

    def _start_actor(self) -> None:
        actor = self.new_actor()  # type: ignore[no-untyped-call]
        self.starting[actor.info.remote()] = actor
        self.started += 1

    def _place_first(self) -> None:
        deadline = time.monotonic() + self.options.start_timeout_s
        while not self.slots:
            self._poll_starting(min(1.0, max(0.0, deadline - time.monotonic())))
            if not self.slots and time.monotonic() >= deadline:
                raise ReplayError(
                    f"Ray placed no worker within {self.options.start_timeout_s:.0f} s "
                    f"(each asks num_cpus={self.cpus:g}, num_gpus={self.gpus:g}; the cluster "
                    f"has {self.ray.cluster_resources()})",
                    cause="ray_no_resources",
                )

    def _poll_starting(self, timeout: float) -> None:
        if not self.starting:
            return
        ready, _ = self.ray.wait(
            list(self.starting), num_returns=len(self.starting), timeout=timeout
        )
        for ref in ready:
            actor = self.starting.pop(ref)
            try:
                self.slots.append(_Slot(actor, self.ray.get(ref)))
            except self.ray.exceptions.RayError as exc:
                self.deaths.append(f"worker failed to start: {_short(exc)}")

    # ------------------------------------------------------------------ loop
    def run(self) -> bool:
        for _ in range(self._wanted()):
            self._start_actor()
        self.info.update(
            {
                "workers": self.started,
                "num_cpus": self.cpus,
                "num_gpus": self.gpus,
                "bags": len(self.jobs),
            }
        )
        self.display.cluster(self.info, len(self.jobs), self.started, self.cpus, self.gpus)
        self.display.open_bar(self.total_frames)
        try:
            self._place_first()
            nodes = len({s.info["node_ip"] for s in self.slots})
            self.display.workers(len(self.slots), self.started, nodes, bool(self.starting))
            while self.queue or any(s.job for s in self.slots):
                self._poll_starting(0.0)
                self._assign()
                self._collect(0.25)
                self._assign()  # an idle worker gets its next bag before progress polling
                self._show_progress()
            return False
        except KeyboardInterrupt:
            self._stop()
            return True
        finally:
            self.info.update({"deaths": self.deaths, "workers_started": self.started})

    def _assign(self) -> None:
        for slot in self.slots:
            if slot.job is None and self.queue:
                i, attempt = self.queue.popleft()
                bag, dest = self.jobs[i]
                stage = stage_for(self.root, dest, attempt_tag(slot.info["pid"], slot.info["host"]))
                ref = slot.actor.run.remote(str(bag), str(dest), str(stage))
                slot.job = _Job(i, ref, time.perf_counter(), stage, attempt)
        if self.queue and not self.slots and not self.starting:
            self._replace_dead()

    def _collect(self, timeout: float) -> None:
        busy = {s.job.ref: s for s in self.slots if s.job is not None}
        if not busy:
            self._poll_starting(timeout)
            return
        ready, _ = self.ray.wait(list(busy), num_returns=len(busy), timeout=timeout)
        for ref in ready:
            slot = busy[ref]
            assert slot.job is not None
            job, slot.job = slot.job, None
            try:
                section = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:  # the worker (or its node) died
                self._worker_died(slot, job.index, job.stage, job.attempt, exc)
                continue
            self._result(slot, job.index, section, time.perf_counter() - job.t0, job.attempt)

    def _result(
        self, slot: _Slot, i: int, section: BagSection, duration: float, attempt: int
    ) -> None:
        if section.pop("retryable", False):
            self.errors[i].append(f"{slot.where}: {section.get('error')}")
            if attempt <= self.options.retries:
                self.queue.append((i, attempt + 1))
                return
        section["worker"] = {
            "node": slot.info["node_ip"],
            "node_id": slot.info["node_id"],
            "host": slot.info["host"],
            "pid": slot.info["pid"],
            "attempts": attempt,
            "duration_s": duration,
            "model_loaded": bool(section.pop("model_loaded", False)),
            "failed_attempts": list(self.errors[i]),
        }
        self.done_frames += sum(
            int(c.get("frames_in", 0)) for c in section.get("cameras", {}).values()
        )
        self.finished(i, section)

    def _worker_died(
        self, slot: _Slot, i: int, stage: Path, attempt: int, exc: BaseException
    ) -> None:
        what = f"worker {slot.where} on node {slot.info['node_ip']} died: {_short(exc)}"
        log.warning("%s (bag %s, attempt %d)", what, self.jobs[i][0], attempt)
        self.deaths.append(what)
        self.errors[i].append(what)
        self.slots.remove(slot)
        with contextlib.suppress(Exception):
            self.ray.kill(slot.actor)
        remove_tree(stage)  # its partial output: never published, never complete-looking
        if attempt <= self.options.retries:
            self.queue.appendleft((i, attempt + 1))
        else:
            self.finished(
                i,
                {
                    "bag": str(self.jobs[i][0]),
                    "complete": False,
                    "error": f"failed {attempt} tries; last: {what}",
                    "worker": {"attempts": attempt, "failed_attempts": list(self.errors[i])},
                },
            )
        self._replace_dead()

    def _replace_dead(self) -> None:
        # Keep the pool at its size while there is work, within a bounded number of starts.
        cap = self._wanted() + len(self.jobs) * (self.options.retries + 1)
        if self.stopping:
            self.queue.clear()  # stopping: a dead worker's bag stays "not run"
            return
        if self.queue and len(self.slots) + len(self.starting) < self._wanted():
            if self.started < cap:
                self._start_actor()
            elif not self.slots and not self.starting:
                while self.queue:
                    i, attempt = self.queue.popleft()
                    self.finished(
                        i,
                        {
                            "bag": str(self.jobs[i][0]),
                            "complete": False,
                            "error": "no Ray worker left to run it",
                            "worker": {"attempts": attempt - 1},
                        },
                    )

    # ------------------------------------------------------------------ Ctrl-C
    def _stop(self) -> None:
        """Ask every worker to close its bag; keep what they return; then give up."""
        self.stopping = True
        self.queue.clear()
        for slot in self.slots:
            if slot.job is not None:
                with contextlib.suppress(Exception):
                    slot.actor.stop.options(concurrency_group=CONTROL).remote()
        deadline = time.monotonic() + self.options.stop_timeout_s
        try:
            while any(s.job for s in self.slots) and time.monotonic() < deadline:
                self._collect(0.25)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            pass
        for slot in self.slots:
            if slot.job is not None:  # did not answer in time: its attempt is dropped
                remove_tree(slot.job.stage)

    # ------------------------------------------------------------------ output
    def _show_progress(self) -> None:
        if self.display.bar is None:
            return
        busy = [s for s in self.slots if s.job is not None]
        running = 0
        if busy:
            refs = [s.actor.progress.options(concurrency_group=CONTROL).remote() for s in busy]
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0.5)
            for ref in ready:
                with contextlib.suppress(Exception):
                    running += int(self.ray.get(ref))
        self.display.show(self.done_frames + running, len(busy), len(self.queue))

    def close(self) -> None:
        self.display.close()
        for actor in [s.actor for s in self.slots] + list(self.starting.values()):
            with contextlib.suppress(Exception):
                self.ray.kill(actor)


def _replace_progress(settings: ReplaySettings) -> ReplaySettings:
    import dataclasses

    return dataclasses.replace(settings, progress=False)  # one bar, the driver's


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
