"""The export cache shared by the ONNX Runtime and TensorRT backends.

ONNX exports of a checkpoint (and files derived from them: optimised, quantised) are
kept under one cache folder, keyed by the model's weights, the input size and the model
code, so a restart reuses them instead of exporting again. TensorRT engines are kept in
its ``engines/`` folder (key, path, timing cache, pruning: the second half of this file).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from rvm_ros.model import RVM
    from rvm_ros.runtime.source import CheckpointSource
from rvm_ros.fsutil import atomic_write, file_sha256
from rvm_ros.runtime.base import InputError

log = logging.getLogger(__name__)


def derived_file(src: Path, tag: str, make: Callable[[Path, Path], object]) -> Path:
    """``<src stem><tag>.onnx`` made from ``src`` by ``make(src, dst)`` when missing, older
    or damaged.

    Written next to ``src``, or in the cache folder when that is not writable; its size and
    sha256 are recorded (`entry_damage`).
    """
    name = src.name.removesuffix(".onnx") + tag + ".onnx"
    for folder in (src.parent, cache_dir() / "onnx"):
        dst = folder / name
        if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime and _intact(dst):
            return dst
        try:
            folder.mkdir(parents=True, exist_ok=True)
            log.info("writing %s from %s", dst, src)
            _build_entry(dst, lambda tmp: make(src, tmp))
            return dst
        except PermissionError:
            continue
    raise InputError(f"cannot write {name} next to {src} or in the cache folder")


# ------------------------------------------------------------------ entry integrity
# Every cache entry has a sidecar <entry>.sha256 ("<size> <sha256>") written with it; an
# entry whose bytes disagree (truncated, zeroed, emptied, half-written) is rebuilt once.


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def entry_damage(path: Path) -> str | None:
    """Why the cache entry ``path`` cannot be trusted, or None when it matches its record."""
    record = _record_path(path)
    try:
        size_text, digest = record.read_text(encoding="ascii").split()[:2]
        size = int(size_text)
    except FileNotFoundError:
        return "no record of its size and hash (an older or interrupted write)"
    except (OSError, UnicodeDecodeError, ValueError):
        return f"its record {record.name} is damaged"
    actual = path.stat().st_size
    if actual != size:
        return f"{actual} bytes where {size} were written"
    if file_sha256(path) != digest:
        return "its bytes differ from the sha256 recorded when it was written"
    return None


def _intact(path: Path) -> bool:
    why = entry_damage(path)
    if why is not None:
        log.warning("damaged cache entry %s (%s): rebuilding it", path, why)
    return why is None


def _build_entry(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(tmp)`` and its record, then swap it in (atomic)."""

    def write_and_record(tmp: Path) -> None:
        write(tmp)
        size = tmp.stat().st_size
        atomic_write(_record_path(path), lambda r: r.write_text(f"{size} {file_sha256(tmp)}\n"))

    atomic_write(path, write_and_record)
    why = entry_damage(path)
    if why is not None:  # rebuilt once; a second failure is the disk's
        raise InputError(f"cache entry {path} is damaged right after it was rebuilt ({why})")


def cache_dir(override: str | Path | None = None) -> Path:
    """Folder of exported ONNX files and TensorRT engines.

    ``override``, else ``$RVM_ROS_CACHE``, else ``~/.cache/rvm_ros``.
    """
    if override is not None:
        return Path(override)
    env = os.environ.get("RVM_ROS_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "rvm_ros"


def _model_code_hash() -> str:
    """Hash of the model's source files, so a changed model never reuses a stale export."""
    import rvm_ros

    digest = hashlib.sha256()
    for root in rvm_ros.__path__:
        base = Path(root)
        # checkpoint/ makes the weights (random:<variant> included); it was checkpoint.py
        files = sorted([*base.glob("model/*.py"), *base.glob("checkpoint/*.py")])
        for f in files:
            if f.is_file():
                digest.update(f.name.encode())
                digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def export_cached(
    model: RVM,
    height: int,
    width: int,
    cache: str | Path | None = None,
    opset: int | None = None,
) -> Path:
    """Export ``model`` to ONNX once per (model id, size, opset, torch, model code).

    Returns:
        The cached ``.onnx`` path (exported now when missing).
    """
    from rvm_ros.runtime.onnx.export import DEFAULT_OPSET, export_onnx

    opset = opset or DEFAULT_OPSET
    key = hashlib.sha256(
        "|".join(
            [
                str(model.model_id),
                str(height),
                str(width),
                str(opset),
                torch.__version__,
                _model_code_hash(),
            ]
        ).encode()
    ).hexdigest()[:16]
    path = cache_dir(cache) / "onnx" / f"{model.model_id}_{height}x{width}_{key}.onnx"
    if not path.is_file() or not _intact(path):
        log.info("exporting %s at %dx%d to %s", model.model_id, height, width, path)
        _build_entry(path, lambda tmp: export_onnx(model, tmp, height, width, opset=opset))
    return path


def _source_key(checkpoint: CheckpointSource, height: int, width: int) -> str | None:
    """A key of a checkpoint *source* that needs no loading: the ``random:`` spec, or the
    file's absolute path, size and modification time. ``None`` for loaded modules."""
    if isinstance(checkpoint, torch.nn.Module):
        return None
    spec = str(checkpoint)
    if not spec.startswith("random:"):
        from rvm_ros.checkpoint.builtin import resolve
        from rvm_ros.checkpoint.errors import CheckpointError

        try:
            spec = resolve(spec)  # builtin:default -> the shipped file
            st = Path(spec).stat()
        except (OSError, CheckpointError):
            return None  # let loading report the problem
        spec = f"{Path(spec).resolve()}|{st.st_size}|{st.st_mtime_ns}"
    parts = [spec, str(height), str(width), torch.__version__, _model_code_hash()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _indexed(index: Path) -> Path | None:
    """The export a ``sources/*.txt`` index names, None (logged) when it is damaged."""
    try:
        text = index.read_text(encoding="utf-8").strip()
        if text and "\x00" not in text and "\n" not in text and Path(text).suffix == ".onnx":
            return Path(text)
    except (OSError, UnicodeDecodeError):
        pass
    log.warning("damaged cache index %s: finding the export again", index)
    return None


def cached_export_of(
    checkpoint: CheckpointSource, height: int, width: int, cache: str | Path | None = None
) -> Path:
    """The cached ONNX export of a checkpoint (path, ``random:`` spec or loaded `RVM`).

    A checkpoint given by path or spec is remembered by `_source_key`, so a later call
    finds its export without loading the checkpoint (fast start of the node / replay).
    """
    from rvm_ros.runtime.source import load_any

    key = _source_key(checkpoint, height, width)
    index = cache_dir(cache) / "onnx" / "sources" / f"{key}.txt" if key else None
    if index is not None and index.is_file():
        known = _indexed(index)
        if known is not None and known.is_file() and _intact(known):
            return known
    path = export_cached(load_any(checkpoint), height, width, cache)
    if index is not None:
        text = str(path.resolve()) + "\n"
        atomic_write(index, lambda tmp: tmp.write_text(text))
    return path


# --------------------------------------------------------------------------- TensorRT
# Engines live in <cache>/engines/: <model_id>-<key>.plan, its sidecar <...>.plan.json and
# one timing cache per TensorRT version and compute capability (reused by every build,
# so a new ONNX file of the same model family rebuilds in a fraction of the first time).

ENGINE_DIR = "engines"
KEEP_ENGINES = 3
_STALE_TMP_S = 3600.0


def engine_cache_key(
    onnx_sha256: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    precision: str,
    height: int,
    width: int,
    max_batch: int,
    opt_batch: int | None = None,
    build_flags: Mapping[str, object] | None = None,
) -> str:
    """The cache key of an engine: a hex digest over everything the plan depends on.

    Args:
        onnx_sha256: sha256 of the ONNX file's bytes.
        trt_version: ``tensorrt.__version__``.
        gpu_name: the GPU's name (plans are not portable between GPUs).
        compute_capability: the GPU's compute capability, e.g. ``"8.7"``.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        height: frame height.
        width: frame width.
        max_batch: upper bound of the batch profile (lower bound is 1).
        opt_batch: batch size the profile optimises for (default ``max_batch``).
        build_flags: the builder options that change the plan (workspace, version and
            hardware compatibility); JSON-serialisable values.

    Returns:
        24 hex characters.

    Raises:
        ValueError: unknown precision or a batch bound below 1.
    """
    if precision not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"precision must be one of ['fp32', 'fp16', 'bf16'], got {precision!r}")
    opt = max_batch if opt_batch is None else opt_batch
    if max_batch < 1 or not 1 <= opt <= max_batch:
        raise ValueError(f"need 1 <= opt_batch ({opt}) <= max_batch ({max_batch})")
    fields = {
        "onnx": onnx_sha256,
        "trt": trt_version,
        "gpu": gpu_name,
        "sm": compute_capability,
        "precision": precision,
        "frames": [[1, height, width, 3], [opt, height, width, 3], [max_batch, height, width, 3]],
        "flags": dict(build_flags or {}),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def engine_cache_path(cache: str | Path, model_id: str, key: str) -> Path:
    """Where the plan for ``key`` lives: ``<cache>/engines/<model_id>-<key>.plan``."""
    return Path(cache) / ENGINE_DIR / f"{model_id}-{key}.plan"


def timing_cache_path(cache: str | Path, trt_version: str, compute_capability: str) -> Path:
    """The TensorRT timing cache shared by builds with one TensorRT version and GPU kind."""
    safe = "".join(ch if ch.isalnum() or ch in ".-" else "_" for ch in trt_version)
    return Path(cache) / ENGINE_DIR / f"timing-trt{safe}-sm{compute_capability}.cache"


def touch_engine(plan: Path) -> None:
    """Mark a cached plan as just used (pruning keeps the most recently used)."""
    with contextlib.suppress(OSError):
        os.utime(plan)


def prune_engines(cache: str | Path, model_id: str, keep: int = KEEP_ENGINES) -> list[Path]:
    """Delete all but the ``keep`` most recently used plans of ``model_id`` (and sidecars).

    Also removes temporary files of interrupted writes older than an hour. Plans of
    other models are never touched. Run after a build, so superseded engines (an older
    ONNX export, another size or precision) do not pile up.

    Returns:
        The plan files deleted.

    Raises:
        ValueError: ``keep`` below 1.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    folder = Path(cache) / ENGINE_DIR
    if not folder.is_dir():
        return []
    mine: list[tuple[float, Path]] = []
    now = time.time()
    for path in folder.iterdir():
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        if path.name.startswith(".") and ".tmp-" in path.name:
            if now - mtime > _STALE_TMP_S:
                with contextlib.suppress(OSError):
                    path.unlink()
            continue
        if path.suffix == ".plan" and path.stem.rsplit("-", 1)[0] == model_id:
            mine.append((mtime, path))
    mine.sort(key=lambda item: (item[0], item[1].name), reverse=True)
    removed = []
    for _, plan in mine[keep:]:
        for victim in (plan.with_name(plan.name + ".json"), plan):
            with contextlib.suppress(FileNotFoundError):
                victim.unlink()
        removed.append(plan)
        log.info("pruned superseded TensorRT engine %s", plan)
    return removed
