"""Replay of one or more bags: output folders, worker processes, the combined report."""

from __future__ import annotations

import concurrent.futures
import logging
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _replay_worker(bag: str, out_dir: str, settings: ReplaySettings) -> dict[str, Any]:
    try:
        return replay_bag(bag, out_dir, settings)
    except KeyboardInterrupt:
        return {"bag": bag, "complete": False, "error": "interrupted", "interrupted": True}


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
        force: replace an existing ``out``.
        workers: bags replayed in parallel processes (each with ``settings.threads``).

    Returns:
        The outcome; ``complete`` False when a bag failed or could only partly be read.

    Raises:
        ReplayError: bad arguments or ``out`` exists without ``force``.
        KeyboardInterrupt: after the partial output has been closed and marked.
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
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if out.exists() and not force:
        raise ReplayError(f"output {out} exists; pass --force to replace it")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    (partial / PARTIAL_MARKER).write_text(
        "replay in progress or interrupted: this output is incomplete\n"
    )
    single = len(paths) == 1
    taken: set[str] = set()
    dirs = [partial if single else partial / _bag_label(p, taken) for p in paths]
    for d in dirs:
        d.mkdir(exist_ok=True)
    sections: list[dict[str, Any] | None] = [None] * len(paths)
    interrupted = False
    start = time.perf_counter()
    try:
        if workers == 1 or single:
            for i, (p, d) in enumerate(zip(paths, dirs, strict=False)):
                try:
                    section = _run_one(p, d, settings, raise_errors=single)
                except ReplayError:
                    shutil.rmtree(partial, ignore_errors=True)  # nothing was written yet
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
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    except KeyboardInterrupt:
        interrupted = True
    wall = time.perf_counter() - start
    done = [
        s if s is not None else {"bag": str(p), "complete": False, "error": "not run"}
        for s, p in zip(sections, paths, strict=False)
    ]
    complete = not interrupted and all(s.get("complete") for s in done)
    report = _combine(done, complete, wall, single, settings)
    if interrupted:
        report["interrupted"] = True
    write_reports(partial, report, [d.name if not single else "" for d in dirs])
    if complete:
        (partial / PARTIAL_MARKER).unlink()
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
        final = out
    else:
        final = partial
    if interrupted:
        raise KeyboardInterrupt(f"replay interrupted; partial output in {final}")
    return ReplayOutcome(final, report, complete)


def _run_one(
    bag: Path, out_dir: Path, settings: ReplaySettings, raise_errors: bool
) -> dict[str, Any]:
    try:
        return replay_bag(bag, out_dir, settings)
    except ReplayError as exc:
        if raise_errors:
            raise
        return {"bag": str(bag), "complete": False, "error": str(exc)}
    except Exception as exc:  # a bug or an I/O failure: keep the other bags' results
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
