"""One bag as a unit of work, shared by every way of running bags (one process, local
worker processes, Ray actors): staged attempts, their publication, and the run journal.

An attempt writes into a hidden staging folder of the run's folder
(``DIR.partial/.<bag>.try-<tag>``); only when the replay returns (complete, failed with
an error, or stopped and closed) is it renamed to the bag's folder. A worker killed
mid-bag therefore leaves a hidden ``.try-`` folder, never a bag folder that looks
complete; whoever retries the bag removes it. Each bag finished complete is recorded in
``DIR.partial/.journal/<bag>.json``, which ``--resume`` reads to skip it; the journal is
removed before the finished run is swapped in as ``DIR``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TypedDict

from rvm_ros.fsutil import atomic_write
from rvm_ros.replay.encoders import EncoderCache
from rvm_ros.replay.records import BagSection
from rvm_ros.replay.run import replay_bag
from rvm_ros.replay.settings import ReplayError, ReplaySettings

__all__ = [
    "JOURNAL",
    "RUN_KEY",
    "RunKey",
    "attempt_tag",
    "finish_journal",
    "load_done",
    "publish",
    "record_done",
    "remove_tree",
    "run_bag_job",
    "run_key",
    "stage_for",
    "stale_stages",
    "start_journal",
]

JOURNAL = ".journal"
RUN_KEY = "run.json"
_TRY = ".try-"


class RunKey(TypedDict):
    """What a resumed run must share with the run it continues (``.journal/run.json``).

    ``settings`` is :class:`ReplaySettings` as JSON (paths as strings), less ``progress``.
    """

    bags: list[str]
    settings: dict[str, object]


def attempt_tag(pid: int | None = None, host: str | None = None) -> str:
    """A unique name part for one attempt: host, process id (of the worker) and a nonce."""
    host = (host or socket.gethostname()).replace("/", "_")
    return f"{host}-{pid if pid is not None else os.getpid()}-{uuid.uuid4().hex[:6]}"


def stage_for(root: Path, dest: Path, tag: str) -> Path:
    """The hidden staging folder of one attempt at the bag whose output is ``dest``."""
    name = "bag" if dest == root else dest.name
    return root / f".{name}{_TRY}{tag}"


def stale_stages(root: Path) -> list[Path]:
    """Staging folders left in ``root`` by attempts that never finished."""
    return sorted(p for p in root.glob(f".*{_TRY}*") if p.is_dir())


def remove_tree(path: Path) -> None:
    """Remove a folder (or file) if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


def publish(stage: Path, dest: Path) -> None:
    """Move a finished attempt into place (replacing whatever an earlier attempt left).

    A single-bag run keeps the bag's files in the run folder itself (``dest`` is the
    stage's parent): they are moved one by one.
    """
    if dest == stage.parent:
        for child in sorted(stage.iterdir()):
            target = dest / child.name
            remove_tree(target)
            os.rename(child, target)
        stage.rmdir()
        return
    remove_tree(dest)
    os.rename(stage, dest)


def run_bag_job(
    bag: Path | str,
    dest: Path,
    stage: Path,
    settings: ReplaySettings,
    encoders: EncoderCache | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> BagSection:
    """Replay one bag into a staging folder, then publish it as ``dest``.

    A bag the replay refuses (:class:`ReplayError`) gives a section with its ``error``
    (and an empty published folder). Any other exception removes the staging folder
    and propagates (the caller records or retries it).

    Returns:
        The bag's report section.
    """
    remove_tree(stage)
    stage.mkdir(parents=True)
    try:
        section = replay_bag(bag, stage, settings, encoders=encoders, on_frames=on_frames)
    except ReplayError as exc:
        section = BagSection(bag=str(bag), complete=False, error=str(exc))
    except BaseException:
        remove_tree(stage)
        raise
    publish(stage, dest)
    return section


# --------------------------------------------------------------------------- journal


def run_key(paths: Sequence[Path], settings: ReplaySettings) -> RunKey:
    """What a resumed run must share with the run it continues."""
    conf = {k: v for k, v in asdict(settings).items() if k != "progress"}
    key: RunKey = json.loads(
        json.dumps(
            {"bags": [os.path.abspath(p) for p in paths], "settings": conf},
            default=str,
            sort_keys=True,
        )
    )
    return key


def _write_json(path: Path, value: RunKey | BagSection) -> None:
    path.parent.mkdir(exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(value, default=str) + "\n"))


def start_journal(root: Path, key: RunKey) -> None:
    """Record what this run replays (checked by ``--resume``)."""
    _write_json(root / JOURNAL / RUN_KEY, key)


def record_done(root: Path, label: str, section: BagSection) -> None:
    """Record a bag finished complete (its folder is already published)."""
    if section.get("complete"):
        _write_json(root / JOURNAL / f"{label}.json", section)


def load_done(root: Path, labels: Sequence[str], key: RunKey) -> dict[int, BagSection]:
    """The complete bags of an earlier run in ``root``, by index (``--resume``).

    Raises:
        ReplayError: ``root`` was written for other bags or other settings.
    """
    journal = root / JOURNAL
    try:
        previous = json.loads((journal / RUN_KEY).read_text())
    except (OSError, ValueError) as exc:
        raise ReplayError(
            f"--resume: {root} has no readable run record ({exc}); rerun without --resume",
            cause="resume_mismatch",
        ) from exc
    if previous != key:
        what = "bags" if previous.get("bags") != key["bags"] else "settings"
        raise ReplayError(
            f"--resume: {root} was written for other {what}; rerun with the same bags and "
            "options, or start over with --force",
            cause="resume_mismatch",
        )
    done: dict[int, BagSection] = {}
    for i, label in enumerate(labels):
        path = journal / f"{label}.json"
        try:
            section: BagSection = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if section.get("complete") and (root / label).is_dir():
            done[i] = section
    return done


def finish_journal(root: Path) -> None:
    """Remove the journal (the run is complete and about to be swapped in)."""
    remove_tree(root / JOURNAL)
