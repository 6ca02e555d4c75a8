"""Replay of one or more bags: output folders, worker processes, the combined report."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rvm_ros.fsutil import OutputError, OutputPlan, check_output, plan_output
from rvm_ros.replay.encoders import EncoderCache
from rvm_ros.replay.jobs import (
    RunKey,
    attempt_tag,
    finish_journal,
    load_done,
    record_done,
    remove_tree,
    run_bag_job,
    run_key,
    stage_for,
    stale_stages,
    start_journal,
)
from rvm_ros.replay.records import BagSection, RunReport, TapvidAverage
from rvm_ros.replay.run import replay_bag
from rvm_ros.replay.settings import PARTIAL_MARKER, ReplayError, ReplayOutcome, ReplaySettings
from rvm_ros.replay.topics import sanitize_name
from rvm_ros.signals import sigterm_as_interrupt

if TYPE_CHECKING:
    from rvm_ros.replay.ray_cluster import ClusterInfo, RayOptions

__all__ = ["replay"]

log = logging.getLogger(__name__)


def _bag_label(bag: Path, taken: set[str]) -> str:
    name = sanitize_name(bag.name or "bag")
    label, i = name, 1
    while label in taken:
        i += 1
        label = f"{name}_{i}"
    taken.add(label)
    return label


def _interrupt_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    # A SIGTERM sent to this process alone must reach the worker processes too, so each
    # closes its partial outputs (Ctrl-C reaches the whole process group by itself).
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, AttributeError):
            os.kill(proc.pid, signal.SIGINT)


_WORKER_ENCODERS = EncoderCache()  # a worker process loads the model once
_WORKER_STOPPED: list[bool] = []  # set once this worker process was interrupted


def _replay_worker(bag: str, dest: str, settings: ReplaySettings) -> BagSection:
    interrupted = BagSection(bag=bag, complete=False, error="interrupted", interrupted=True)
    if _WORKER_STOPPED:  # a bag the pool had already queued here when Ctrl-C came
        return interrupted
    root = Path(dest).parent
    try:
        with sigterm_as_interrupt():
            section = run_bag_job(
                bag,
                Path(dest),
                stage_for(root, Path(dest), attempt_tag()),
                settings,
                _WORKER_ENCODERS,
            )
    except KeyboardInterrupt:
        _WORKER_STOPPED.append(True)
        return interrupted
    if section.get("interrupted"):
        _WORKER_STOPPED.append(True)
    return section


class _Interrupted(KeyboardInterrupt):
    """Carries the sections finished before the interrupt."""

    def __init__(self, sections: list[BagSection | None]) -> None:
        super().__init__("interrupted")
        self.sections = sections


def replay(
    bag_paths: Sequence[Path | str],
    out: Path | str,
    settings: ReplaySettings | None = None,
    force: bool = False,
    workers: int = 1,
    *,
    resume: bool = False,
    ray: RayOptions | None = None,
) -> ReplayOutcome:
    """Replay bags into ``out`` (see the module docstring for what is written).

    Args:
        bag_paths: rosbag2 folders (or bare ``.mcap`` / ``.db3`` files).
        out: output folder; must not exist unless ``force``.
        settings: what to run; defaults to :class:`ReplaySettings`.
        force: replace an existing ``out`` (only after the new one is complete).
        workers: bags replayed in parallel processes (each with ``settings.threads``);
            with ``ray``, its ``workers`` decides instead.
        resume: continue the ``out.partial`` an interrupted or failed run left: bags it
            finished complete are kept, the others replayed again.
        ray: run the bags on a Ray cluster (:mod:`rvm_ros.replay.ray_engine`).

    Returns:
        The outcome; ``complete`` False when a bag failed or could only partly be read.

    Raises:
        ReplayError: bad arguments, or (one bag) a bag that cannot be replayed at all.
        OutputError: ``out`` exists without ``force``, or is / contains / lies inside a
            bag, the config file or the checkpoint (``--force`` never removes an input).
        KeyboardInterrupt: after the partial output has been closed and marked (Ctrl-C,
            or SIGTERM, which is handled the same way).
    """
    settings = settings or ReplaySettings()
    paths = _check_bags(bag_paths, workers)
    out = Path(os.path.abspath(out))  # "." or "a/.." get a real name (and are refused)
    single = len(paths) == 1
    taken: set[str] = set()
    labels = ["" if single else _bag_label(p, taken) for p in paths]
    key = run_key(paths, settings)
    plan, done = _prepare_output(
        out, _inputs(paths, settings), force, resume and not single, labels, key
    )
    dirs = [plan.work / label if label else plan.work for label in labels]
    for d in dirs:
        d.mkdir(exist_ok=True)
    ray_info: ClusterInfo = {}
    start = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            sections, interrupted = _run_all(
                paths, dirs, settings, workers, plan, done, ray, ray_info
            )
    except _Interrupted as exc:
        sections, interrupted = exc.sections, True
    wall = time.perf_counter() - start
    finished = [
        s if s is not None else BagSection(bag=str(p), complete=False, error="not run")
        for s, p in zip(sections, paths, strict=False)
    ]
    complete = not interrupted and all(s.get("complete") for s in finished)
    report = _combine(finished, complete, wall, single, settings)
    if ray is not None:
        from rvm_ros.replay.ray_report import cluster_summary

        report["cluster"] = cluster_summary(finished, wall, ray_info, resumed=len(done))
    if interrupted:
        report["interrupted"] = True
    final = _write_output(plan, report, labels, complete)
    if interrupted:
        raise KeyboardInterrupt(f"replay interrupted; partial output in {final}")
    return ReplayOutcome(final, report, complete)


def _check_bags(bag_paths: Sequence[Path | str], workers: int) -> list[Path]:
    """The bags as paths; a one-line error for none, a missing one or no workers."""
    paths = [Path(b) for b in bag_paths]
    if not paths:
        raise ReplayError("no bag given")
    for p in paths:
        if not p.exists():
            raise ReplayError(f"bag {p} does not exist")
    if workers < 1:
        raise ReplayError(f"--workers must be >= 1, got {workers}")
    return paths


def _inputs(paths: list[Path], settings: ReplaySettings) -> list[Path | str]:
    """What ``--out`` must never be, hold or lie inside: the bags, config and checkpoint."""
    inputs: list[Path | str] = [*paths, *([settings.config] if settings.config else [])]
    if settings.checkpoint and not settings.checkpoint.startswith("random:"):
        inputs.append(settings.checkpoint)
    return inputs


def _write_output(plan: OutputPlan, report: RunReport, labels: list[str], complete: bool) -> Path:
    """Write the reports; swap a complete run in as ``DIR`` (else it stays ``DIR.partial``)."""
    from rvm_ros.replay.report import write_reports

    partial = plan.work
    with sigterm_as_interrupt(ignore=True):  # a second SIGTERM must not cut the report
        write_reports(partial, report, labels)
        if not complete:
            return partial
        finish_journal(partial)
        (partial / PARTIAL_MARKER).unlink()
        return plan.commit()


def _prepare_output(
    out: Path,
    inputs: Sequence[Path | str],
    force: bool,
    resume: bool,
    labels: Sequence[str],
    key: RunKey,
) -> tuple[OutputPlan, dict[int, BagSection]]:
    """Plan ``out`` (work in ``out.partial``), or reopen it (``resume``).

    Returns:
        The plan, and the bags an earlier run finished (``resume``), by index.
    """
    partial = out.with_name(out.name + ".partial")
    if resume and partial.is_dir() and (partial / PARTIAL_MARKER).is_file():
        check_output(out, inputs, force, what="--out")
        check_output(partial, inputs, force=True, what="--out work folder")
        done = load_done(partial, labels, key)
        for stage in stale_stages(partial):  # attempts that never finished
            remove_tree(stage)
        log.info("resuming %s: %d of %d bags already complete", partial, len(done), len(labels))
        return OutputPlan(out, partial, force), done
    # Work happens in DIR.partial; a previous DIR is removed only once the new one is
    # complete, and never when it is, holds or lies inside an input (rvm_ros.fsutil).
    plan = plan_output(out, inputs, force, work=partial, what="--out")
    try:
        partial.mkdir()
    except OSError as exc:
        raise OutputError(
            f"cannot create {partial}: {exc.strerror}", cause="output_unwritable", exit_code=1
        ) from exc
    (partial / PARTIAL_MARKER).write_text(
        "replay in progress or interrupted: this output is incomplete\n"
    )
    if len(labels) > 1:
        start_journal(partial, key)
    return plan, {}


def _run_all(
    paths: list[Path],
    dirs: list[Path],
    settings: ReplaySettings,
    workers: int,
    plan: OutputPlan,
    done: dict[int, BagSection],
    ray: RayOptions | None,
    ray_info: ClusterInfo,
) -> tuple[list[BagSection | None], bool]:
    """Replay every bag not ``done`` (here, in worker processes, or on Ray).

    Returns:
        ``(sections, interrupted)``; an interrupt raises :class:`_Interrupted` with the
        sections finished so far.
    """
    sections: list[BagSection | None] = [done.get(i) for i in range(len(paths))]
    todo = [i for i in range(len(paths)) if i not in done]
    root = plan.work

    def finished(i: int, section: BagSection) -> None:
        sections[i] = section
        if dirs[i] != root:
            record_done(root, dirs[i].name, section)

    if ray is not None:
        from rvm_ros.replay.ray_engine import run_on_ray

        interrupted = run_on_ray(
            [(i, paths[i], dirs[i]) for i in todo], root, settings, ray, finished, ray_info
        )
        return sections, interrupted
    try:
        if len(paths) == 1:
            one = sections[0] = _run_one(paths[0], dirs[0], settings, plan)
            return sections, bool(one.get("interrupted"))
        if workers == 1:
            return sections, _run_serial(paths, dirs, todo, settings, finished)
        _run_pool(paths, dirs, todo, settings, workers, finished)
    except KeyboardInterrupt:
        raise _Interrupted(sections) from None
    return sections, any(bool(s and s.get("interrupted")) for s in sections)


def _run_serial(
    paths: list[Path],
    dirs: list[Path],
    todo: list[int],
    settings: ReplaySettings,
    finished: Callable[[int, BagSection], None],
) -> bool:
    encoders = EncoderCache()  # the model loads once for all bags
    try:
        for i in todo:
            root = dirs[i].parent
            stage = stage_for(root, dirs[i], attempt_tag())
            try:
                section = run_bag_job(paths[i], dirs[i], stage, settings, encoders)
            except OSError as exc:  # disk full, permissions: one line, not a traceback
                log.error("replay of %s failed: %s", paths[i], exc)
                section = _failed(paths[i], exc)
            except Exception as exc:  # a bug: keep the other bags' results
                log.exception("replay of %s failed", paths[i])
                section = _failed(paths[i], exc)
            finished(i, section)
            if section.get("interrupted"):
                return True
    finally:
        encoders.close()
    return False


def _run_pool(
    paths: list[Path],
    dirs: list[Path],
    todo: list[int],
    settings: ReplaySettings,
    workers: int,
    finished: Callable[[int, BagSection], None],
) -> None:
    # spawn: forking a process that already ran torch (OpenMP) or DDS threads can hang
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = {
            pool.submit(_replay_worker, str(paths[i]), str(dirs[i]), settings): i for i in todo
        }
        try:
            for fut in concurrent.futures.as_completed(futures):
                i = futures[fut]
                try:
                    finished(i, fut.result())
                except Exception as exc:  # ReplayError, or a failure in the worker
                    finished(i, BagSection(bag=str(paths[i]), complete=False, error=str(exc)))
        except KeyboardInterrupt:
            _interrupt_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            for fut, i in futures.items():  # what the workers closed on the way out
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    finished(i, fut.result())
            raise


def _failed(bag: Path, exc: BaseException) -> BagSection:
    """The section of a bag whose replay raised ``exc``."""
    return BagSection(bag=str(bag), complete=False, error=f"{type(exc).__name__}: {exc}")


def _run_one(bag: Path, out_dir: Path, settings: ReplaySettings, plan: OutputPlan) -> BagSection:
    """One bag, written straight into the run's folder; a refused bag is an error."""
    try:
        return replay_bag(bag, out_dir, settings)
    except ReplayError:
        plan.discard()  # nothing was written yet
        raise
    except OSError:  # disk full, permissions: the CLI's one line, not a traceback
        raise
    except Exception as exc:  # a bug: report it
        log.exception("replay of %s failed", bag)
        return _failed(bag, exc)


def _combine(
    sections: list[BagSection],
    complete: bool,
    wall: float,
    single: bool,
    settings: ReplaySettings,
) -> RunReport:
    from rvm_ros import __version__

    report: RunReport = {
        "tool": f"rvm-ros replay {__version__}",
        "complete": complete,
        "wall_s": wall,
        "config": str(settings.config) if settings.config else None,
        "bags": sections,
    }
    # Read failures mean the result is not a full replay of the bag.
    report["read_errors"] = [e for s in sections for e in s.get("read_errors", [])]
    frames = sum(c["processed"] for s in sections for c in s.get("cameras", {}).values())
    report["processed"] = frames
    report["throughput_fps"] = frames / wall if wall > 0 else None
    if single:
        report["cameras"] = sections[0].get("cameras", {})
    average = _tapvid_average(sections)
    if average is not None:
        report["tapvid_average"] = average
    return report


def _tapvid_average(sections: list[BagSection]) -> TapvidAverage | None:
    """Mean TAP-Vid metrics over every camera stream with ground truth (None: no stream)."""
    per_video = [
        {k: (math.nan if v is None else v) for k, v in c["tapvid"]["metrics"].items()}
        for s in sections
        for c in s.get("cameras", {}).values()
        if "metrics" in c.get("tapvid", {})
    ]
    if not per_video:
        return None
    from rvm_ros.tracking.evaluation.tapvid import average_metrics

    return {
        "videos": len(per_video),
        "metrics": {
            k: (None if math.isnan(v) else v) for k, v in average_metrics(per_video).items()
        },
    }
