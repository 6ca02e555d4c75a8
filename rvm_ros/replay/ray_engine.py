"""Bags replayed on a Ray cluster (``rvm-ros replay BAG... --ray [ADDRESS]``).

The unit of work is one bag: it runs in order on one worker, so every camera's
recurrent state is carried exactly as in a local run. Workers are Ray actors
(:class:`ReplayWorker`) that import the stack and load the model once, then take bag
after bag through the same job as local runs (:func:`rvm_ros.replay.jobs.run_bag_job`:
staged attempt folder, published only when the replay returns), so the outputs are the
local run's. Each worker declares ``num_cpus`` (and ``num_gpus``, fractional so several
share a GPU); the driver hands a worker its next bag only when it is idle, so no worker
holds more than the one bag it runs (bounded backpressure, nothing queued on a worker
that could die with it).

Faults: a worker that dies mid-bag (its process or its node) is replaced and the bag
is retried on another worker up to ``retries`` times; its staging folder is removed, so
no partial output ever looks complete. A bag the replay refuses (a bad bag) is reported
with its error at once; other bags go on. Ctrl-C asks every worker to stop: each closes
its bag like a local Ctrl-C, the bags that finished stay, and ``--resume`` continues.

``ray`` is an optional dependency (``pip install rvm_ros[ray]``), imported only here.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvm_ros.replay.encoders import EncoderCache
from rvm_ros.replay.jobs import attempt_tag, remove_tree, run_bag_job, stage_for
from rvm_ros.replay.settings import ReplayError, ReplaySettings

log = logging.getLogger(__name__)

LOCAL = "local"  # ADDRESS of a cluster started for the run (``--ray`` without ADDRESS)
_CONTROL = "control"  # the actors' concurrency group of progress() / stop()


class RayUnavailable(ReplayError):
    """``--ray`` was asked for but the ``ray`` package is not installed."""

    cause = "ray_missing"


@dataclass(frozen=True)
class RayOptions:
    """How to run on Ray.

    Attributes:
        address: ``local`` (start a cluster on this machine for the run, stopped after),
            ``auto`` (the cluster this machine belongs to), ``ray://host:port`` (Ray
            Client) or ``host:port`` (the head's GCS).
        workers: Actors to start; None: as many as the cluster's CPUs (and GPUs) allow,
            at most one per bag.
        cpus_per_worker: ``num_cpus`` of each actor; None: the replay's torch threads.
        gpus_per_worker: ``num_gpus`` of each actor (fractional: several share a GPU);
            None: 0.25 where the replay runs on CUDA (``--device cuda`` or the tensorrt
            backend), else 0.
        retries: Further tries of a bag whose worker died (or failed unexpectedly).
        local_cpus: CPUs of a ``local`` cluster (default: this machine's).
        start_timeout_s: How long to wait for the first worker to be placed.
        stop_timeout_s: After Ctrl-C, how long workers get to close their bags.
        announce: Print the cluster, dashboard and workers to stderr.
        progress: One progress bar over all bags (frames done / total).
    """

    address: str = LOCAL
    workers: int | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None
    retries: int = 2
    local_cpus: int | None = None
    start_timeout_s: float = 300.0
    stop_timeout_s: float = 60.0
    announce: bool = True
    progress: bool = True

    def resources(self, settings: ReplaySettings) -> tuple[float, float]:
        """``(num_cpus, num_gpus)`` of one worker."""
        cpus = self.cpus_per_worker if self.cpus_per_worker is not None else settings.threads
        gpus = self.gpus_per_worker
        if gpus is None:
            cuda = (settings.device or "").startswith("cuda") or settings.backend == "tensorrt"
            gpus = 0.25 if cuda else 0.0
        return float(cpus), float(gpus)


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`RayUnavailable`."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(
            f"--ray needs the ray package ({exc}); install it with: pip install 'rvm_ros[ray]'"
        ) from exc
    return ray


# --------------------------------------------------------------------------- the actor


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

    def info(self) -> dict[str, Any]:
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

    def run(self, bag: str, dest: str, stage: str) -> dict[str, Any]:
        """Replay one bag (see :func:`rvm_ros.replay.jobs.run_bag_job`)."""
        self.frames = 0
        if self.stopping.is_set():
            return {"bag": bag, "complete": False, "error": "interrupted", "interrupted": True}
        loads = self.encoders.loads
        try:
            section = run_bag_job(
                bag, Path(dest), Path(stage), self.settings, self.encoders, self._count
            )
        except Exception as exc:  # a bug or an I/O failure: the driver may retry it
            log.exception("replay of %s failed", bag)
            return {
                "bag": bag,
                "complete": False,
                "error": f"{type(exc).__name__}: {exc}",
                "retryable": True,
            }
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


@dataclass
class _Slot:
    """One live actor as the driver sees it."""

    actor: Any
    info: dict[str, Any]
    job: tuple[int, Any, float, Path, int] | None = None  # (index, ref, t0, stage, attempt)

    @property
    def where(self) -> str:
        return f"{self.info['host']}:{self.info['pid']}"


# --------------------------------------------------------------------------- the driver


def run_on_ray(
    jobs: Sequence[tuple[int, Path, Path]],
    root: Path,
    settings: ReplaySettings,
    options: RayOptions,
    finished: Callable[[int, dict[str, Any]], None],
    info: dict[str, Any] | None = None,
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
    owned = _connect(ray, options, info)
    driver = _Driver(ray, jobs, root, settings, options, finished, info)
    try:
        return driver.run()
    finally:
        driver.close()
        if owned:
            ray.shutdown()


def _connect(ray: Any, options: RayOptions, info: dict[str, Any]) -> bool:
    """Join or start the cluster; returns whether this run started it (and stops it)."""
    if ray.is_initialized():  # the caller's own connection (a notebook, the tests)
        ctx = ray.get_runtime_context()
        info.update(address=ctx.gcs_address, dashboard=_dashboard(ray))
        return False
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if options.address == LOCAL:
        kwargs.update(num_cpus=options.local_cpus or os.cpu_count() or 1)
    else:
        kwargs.update(address=options.address)
    try:
        ctx = ray.init(**kwargs)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError, ...
        raise ReplayError(
            f"cannot {'start' if options.address == LOCAL else 'reach'} the Ray cluster "
            f"{options.address}: {exc}",
            cause="ray_unreachable",
        ) from exc
    info.update(
        address=getattr(ctx, "address_info", {}).get("gcs_address") or options.address,
        dashboard=getattr(ctx, "dashboard_url", None) or _dashboard(ray),
    )
    return True


def _dashboard(ray: Any) -> str | None:
    with contextlib.suppress(Exception):
        url = ray.get_runtime_context().dashboard_url  # not in every version
        return str(url) if url else None
    return None


class _Driver:
    """Hands bags to idle workers, retries the bags of dead ones, reports progress."""

    def __init__(
        self,
        ray: Any,
        jobs: Sequence[tuple[int, Path, Path]],
        root: Path,
        settings: ReplaySettings,
        options: RayOptions,
        finished: Callable[[int, dict[str, Any]], None],
        info: dict[str, Any],
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
        self.starting: dict[Any, Any] = {}  # info() ref -> actor being placed
        self.started = 0
        self.deaths: list[str] = []
        self.done_frames = 0
        self.total_frames = _count_frames([bag for bag, _dest in self.jobs.values()])
        cpus, gpus = options.resources(settings)
        self.cpus, self.gpus = cpus, gpus
        worker_settings = _replace_progress(settings)
        remote = ray.remote(
            num_cpus=cpus,
            num_gpus=gpus,
            max_restarts=0,
            concurrency_groups={_CONTROL: 1},
            scheduling_strategy="SPREAD",
        )(ReplayWorker)
        self.new_actor = lambda: remote.remote(worker_settings)
        self.bar: Any = None
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
            workers=self.started, num_cpus=self.cpus, num_gpus=self.gpus, bags=len(self.jobs)
        )
        self._announce_cluster()
        self._open_bar()
        try:
            self._place_first()
            self._announce_workers()
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
            self.info.update(deaths=self.deaths, workers_started=self.started)

    def _assign(self) -> None:
        for slot in self.slots:
            if slot.job is None and self.queue:
                i, attempt = self.queue.popleft()
                bag, dest = self.jobs[i]
                stage = stage_for(self.root, dest, attempt_tag(slot.info["pid"], slot.info["host"]))
                ref = slot.actor.run.remote(str(bag), str(dest), str(stage))
                slot.job = (i, ref, time.perf_counter(), stage, attempt)
        if self.queue and not self.slots and not self.starting:
            self._replace_dead()

    def _collect(self, timeout: float) -> None:
        busy = {s.job[1]: s for s in self.slots if s.job is not None}
        if not busy:
            self._poll_starting(timeout)
            return
        ready, _ = self.ray.wait(list(busy), num_returns=len(busy), timeout=timeout)
        for ref in ready:
            slot = busy[ref]
            assert slot.job is not None
            i, _ref, t0, stage, attempt = slot.job
            slot.job = None
            try:
                section = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:  # the worker (or its node) died
                self._worker_died(slot, i, stage, attempt, exc)
                continue
            self._result(slot, i, section, time.perf_counter() - t0, attempt)

    def _result(
        self, slot: _Slot, i: int, section: dict[str, Any], duration: float, attempt: int
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
                    slot.actor.stop.options(concurrency_group=_CONTROL).remote()
        deadline = time.monotonic() + self.options.stop_timeout_s
        try:
            while any(s.job for s in self.slots) and time.monotonic() < deadline:
                self._collect(0.25)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            pass
        for slot in self.slots:
            if slot.job is not None:  # did not answer in time: its attempt is dropped
                remove_tree(slot.job[3])

    # ------------------------------------------------------------------ output
    def _announce_cluster(self) -> None:
        if not self.options.announce:
            return
        dash = self.info.get("dashboard")
        if dash and "://" not in dash:
            dash = f"http://{dash}"
        print(
            f"rvm-ros replay: Ray cluster {self.info.get('address')}"
            + (f", dashboard {dash}" if dash else " (no dashboard)")
            + f"; {len(self.jobs)} bags on {self.started} workers "
            f"(num_cpus={self.cpus:g}, num_gpus={self.gpus:g} each)",
            file=sys.stderr,
        )

    def _announce_workers(self) -> None:
        if self.options.announce:
            nodes = sorted({s.info["node_ip"] for s in self.slots})
            print(
                f"rvm-ros replay: {len(self.slots)} of {self.started} workers ready on "
                f"{len(nodes)} node(s)"
                + ("; the others join when placed" if self.starting else ""),
                file=sys.stderr,
            )

    def _open_bar(self) -> None:
        if self.options.progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total_frames or None,
                desc="replay (ray)",
                unit="frame",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def _show_progress(self) -> None:
        if self.bar is None:
            return
        busy = [s for s in self.slots if s.job is not None]
        running = 0
        if busy:
            refs = [s.actor.progress.options(concurrency_group=_CONTROL).remote() for s in busy]
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0.5)
            for ref in ready:
                with contextlib.suppress(Exception):
                    running += int(self.ray.get(ref))
        self.bar.n = self.done_frames + running
        self.bar.set_postfix_str(f"{len(busy)} bags running, {len(self.queue)} queued")
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        for actor in [s.actor for s in self.slots] + list(self.starting.values()):
            with contextlib.suppress(Exception):
                self.ray.kill(actor)


def _replace_progress(settings: ReplaySettings) -> ReplaySettings:
    import dataclasses

    return dataclasses.replace(settings, progress=False)  # one bar, the driver's


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _count_frames(bags: Sequence[Path]) -> int:
    """Image messages in the bags (the progress bar's total; 0 where unknown)."""
    from rvm_ros.bags import rosbag2

    total = 0
    for bag in bags:
        with contextlib.suppress(Exception), rosbag2.BagReader(bag) as reader:
            images = rosbag2.image_topics(reader.topics)
            conns = reader._reader.connections if reader._reader else []
            total += sum(c.msgcount for c in conns if c.topic in images)
    return total


# --------------------------------------------------------------------------- report


def cluster_summary(
    sections: Sequence[dict[str, Any]], wall: float, info: dict[str, Any], resumed: int
) -> dict[str, Any]:
    """The report's ``cluster`` entry: where each bag ran, per-node throughput, faults."""
    nodes: dict[str, dict[str, Any]] = {}
    for s in sections:
        w = s.get("worker") or {}
        if "node" not in w:
            continue
        key = f"{w['node']} ({str(w.get('node_id'))[:8]})"  # several nodes may share an IP
        n = nodes.setdefault(key, {"bags": 0, "frames": 0, "busy_s": 0.0, "workers": set()})
        n["bags"] += 1
        n["frames"] += sum(int(c.get("processed", 0)) for c in s.get("cameras", {}).values())
        n["busy_s"] += float(w.get("duration_s", 0.0))
        n["workers"].add(w.get("pid"))
    for n in nodes.values():
        n["workers"] = len(n["workers"])
        n["fps"] = n["frames"] / n["busy_s"] if n["busy_s"] > 0 else None
    loads = [s["model_load_s"] for s in sections if s.get("worker", {}).get("model_loaded")]
    return {
        "address": info.get("address"),
        "dashboard": info.get("dashboard"),
        "workers": info.get("workers"),
        "workers_started": info.get("workers_started"),
        "num_cpus_per_worker": info.get("num_cpus"),
        "num_gpus_per_worker": info.get("num_gpus"),
        "nodes": dict(sorted(nodes.items())),
        "resumed_bags": resumed,
        "retried_bags": sum(1 for s in sections if (s.get("worker") or {}).get("attempts", 1) > 1),
        "worker_deaths": list(info.get("deaths", [])),
        "model_loads": len(loads),
        "model_load_s": loads,
        "wall_s": wall,
    }
