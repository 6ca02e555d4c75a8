"""Replay of one or more bags: output folders, worker processes, the combined report."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rvm_ros.fsutil import OutputError, OutputPlan, plan_output
from rvm_ros.replay.run import replay_bag
from rvm_ros.replay.settings import PARTIAL_MARKER, ReplayError, ReplayOutcome, ReplaySettings
from rvm_ros.replay.topics import _sanitize

log = logging.getLogger(__name__)


def _bag_label(bag: Path, taken: set[str]) -> str:
    name = _sanitize(bag.name or "bag")
    label, i = name, 1
    while label in taken:
        i += 1
        label = f"{name}_{i}"
    taken.add(label)
    return label


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_as_interrupt(ignore: bool = False) -> Iterator[None]:
    """Within the block, SIGTERM stops the work exactly like Ctrl-C (SIGINT) does.

    The main thread gets a KeyboardInterrupt, so the partial output is closed, marked and
    reported as after Ctrl-C. Outside the main thread this changes nothing.

    Args:
        ignore: Ignore SIGTERM instead (while the report of a stopped run is written).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore else _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    # A SIGTERM sent to this process alone must reach the worker processes too, so each
    # closes its partial outputs (Ctrl-C reaches the whole process group by itself).
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, AttributeError):
            os.kill(proc.pid, signal.SIGINT)


def _replay_worker(bag: str, out_dir: str, settings: ReplaySettings) -> dict[str, Any]:
    try:
        with sigterm_as_interrupt():
            return replay_bag(bag, out_dir, settings)
    except KeyboardInterrupt:
        return {"bag": bag, "complete": False, "error": "interrupted", "interrupted": True}


class _Interrupted(KeyboardInterrupt):
    """Carries the sections finished before the interrupt."""

    def __init__(self, sections: list[dict[str, Any] | None]) -> None:
        super().__init__("interrupted")
        self.sections = sections


def replay(
    bag_paths: Sequence[Path | str],
    out: Path | str,
    settings: ReplaySettings | None = None,
    force: bool = False,
    workers: int = 1,
) -> ReplayOutcome:
    """Replay bags into ``out`` (see the module docstring for what is written).

    Args:
        bag_paths: rosbag2 folders (or bare ``.mcap`` / ``.db3`` files).
        out: output folder; must not exist unless ``force``.
        settings: what to run; defaults to :class:`ReplaySettings`.
        force: replace an existing ``out`` (only after the new one is complete).
        workers: bags replayed in parallel processes (each with ``settings.threads``).

    Returns:
        The outcome; ``complete`` False when a bag failed or could only partly be read.

    Raises:
        ReplayError: bad arguments, or (one bag) a bag that cannot be replayed at all.
        OutputError: ``out`` exists without ``force``, or is / contains / lies inside a
            bag, the config file or the checkpoint (``--force`` never removes an input).
        KeyboardInterrupt: after the partial output has been closed and marked (Ctrl-C,
            or SIGTERM, which is handled the same way).
    """
    from rvm_ros.replay.report import write_reports

    settings = settings or ReplaySettings()
    paths = [Path(b) for b in bag_paths]
    if not paths:
        raise ReplayError("no bag given")
    for p in paths:
        if not p.exists():
            raise ReplayError(f"bag {p} does not exist")
    if workers < 1:
        raise ReplayError(f"--workers must be >= 1, got {workers}")
    out = Path(os.path.abspath(out))  # "." or "a/.." get a real name (and are refused)
    inputs: list[Path | str] = [*paths, *([settings.config] if settings.config else [])]
    if settings.checkpoint and not settings.checkpoint.startswith("random:"):
        inputs.append(settings.checkpoint)
    # Work happens in DIR.partial; a previous DIR is removed only once the new one is
    # complete, and never when it is, holds or lies inside an input (rvm_ros.fsutil).
    plan = plan_output(out, inputs, force, work=out.with_name(out.name + ".partial"), what="--out")
    partial = plan.work
    try:
        partial.mkdir()
    except OSError as exc:
        raise OutputError(
            f"cannot create {partial}: {exc.strerror}", cause="output_unwritable", exit_code=1
        ) from exc
    (partial / PARTIAL_MARKER).write_text(
        "replay in progress or interrupted: this output is incomplete\n"
    )
    single = len(paths) == 1
    taken: set[str] = set()
    dirs = [partial if single else partial / _bag_label(p, taken) for p in paths]
    for d in dirs:
        d.mkdir(exist_ok=True)
    start = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            sections, interrupted = _run_all(paths, dirs, settings, workers, single, plan)
    except _Interrupted as exc:
        sections, interrupted = exc.sections, True
    wall = time.perf_counter() - start
    done = [
        s if s is not None else {"bag": str(p), "complete": False, "error": "not run"}
        for s, p in zip(sections, paths, strict=False)
    ]
    complete = not interrupted and all(s.get("complete") for s in done)
    report = _combine(done, complete, wall, single, settings)
    if interrupted:
        report["interrupted"] = True
    with sigterm_as_interrupt(ignore=True):  # a second SIGTERM must not cut the report
        write_reports(partial, report, [d.name if not single else "" for d in dirs])
        if complete:
            (partial / PARTIAL_MARKER).unlink()
            final = plan.commit()
        else:
            final = partial
    if interrupted:
        raise KeyboardInterrupt(f"replay interrupted; partial output in {final}")
    return ReplayOutcome(final, report, complete)


def _run_all(
    paths: list[Path],
    dirs: list[Path],
    settings: ReplaySettings,
    workers: int,
    single: bool,
    plan: OutputPlan,
) -> tuple[list[dict[str, Any] | None], bool]:
    """Replay every bag (here or in worker processes).

    Returns:
        ``(sections, interrupted)``; an interrupt raises :class:`_Interrupted` with the
        sections finished so far.
    """
    sections: list[dict[str, Any] | None] = [None] * len(paths)
    interrupted = False
    try:
        if workers == 1 or single:
            for i, (p, d) in enumerate(zip(paths, dirs, strict=False)):
                try:
                    section = _run_one(p, d, settings, raise_errors=single)
                except ReplayError:
                    plan.discard()  # nothing was written yet
                    raise
                sections[i] = section
                if section.get("interrupted"):
                    interrupted = True
                    break
        else:
            # spawn: forking a process that already ran torch (OpenMP) or DDS threads can hang
            ctx = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                futures = {
                    pool.submit(_replay_worker, str(p), str(d), settings): i
                    for i, (p, d) in enumerate(zip(paths, dirs, strict=False))
                }
                try:
                    for fut in concurrent.futures.as_completed(futures):
                        i = futures[fut]
                        try:
                            result = fut.result()
                            sections[i] = result
                            interrupted = interrupted or bool(result.get("interrupted"))
                        except Exception as exc:  # ReplayError, or a failure in the worker
                            sections[i] = {
                                "bag": str(paths[i]),
                                "complete": False,
                                "error": str(exc),
                            }
                except KeyboardInterrupt:
                    _interrupt_workers(pool)
                    pool.shutdown(wait=True, cancel_futures=True)
                    for fut, i in futures.items():  # what the workers closed on the way out
                        if fut.done() and not fut.cancelled() and fut.exception() is None:
                            sections[i] = fut.result()
                    raise
    except KeyboardInterrupt:
        raise _Interrupted(sections) from None
    return sections, interrupted


def _run_one(
    bag: Path, out_dir: Path, settings: ReplaySettings, raise_errors: bool
) -> dict[str, Any]:
    try:
        return replay_bag(bag, out_dir, settings)
    except ReplayError as exc:
        if raise_errors:
            raise
        return {"bag": str(bag), "complete": False, "error": str(exc)}
    except OSError as exc:  # disk full, permissions: one line, not a traceback
        if raise_errors:
            raise
        log.error("replay of %s failed: %s", bag, exc)
        return {"bag": str(bag), "complete": False, "error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # a bug: keep the other bags' results
        log.exception("replay of %s failed", bag)
        return {"bag": str(bag), "complete": False, "error": f"{type(exc).__name__}: {exc}"}


def _combine(
    sections: list[dict[str, Any]],
    complete: bool,
    wall: float,
    single: bool,
    settings: ReplaySettings,
) -> dict[str, Any]:
    from rvm_ros import __version__

    report: dict[str, Any] = {
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
    per_video = [
        {k: (math.nan if v is None else v) for k, v in c["tapvid"]["metrics"].items()}
        for s in sections
        for c in s.get("cameras", {}).values()
        if "metrics" in c.get("tapvid", {})
    ]
    if per_video:
        from rvm_ros.tracking.tapvid import average_metrics

        report["tapvid_average"] = {
            "videos": len(per_video),
            "metrics": {
                k: (None if math.isnan(v) else v) for k, v in average_metrics(per_video).items()
            },
        }
    return report
