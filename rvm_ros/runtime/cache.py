"""The export cache shared by the ONNX Runtime and TensorRT backends.

ONNX exports of a checkpoint (and files derived from them: optimised, quantised) are
kept under one cache folder, keyed by the model's weights, the input size and the model
code, so a restart reuses them instead of exporting again."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from rvm_ros.model import RVM
from rvm_ros.runtime.base import InputError

log = logging.getLogger(__name__)


def derived_file(src: Path, tag: str, make: Callable[[Path, Path], object]) -> Path:
    """``<src stem><tag>.onnx`` made from ``src`` by ``make(src, dst)`` when missing or older.

    Written next to ``src``, or in the cache folder when that is not writable.
    """
    name = src.name.removesuffix(".onnx") + tag + ".onnx"
    for folder in (src.parent, cache_dir() / "onnx"):
        dst = folder / name
        if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
            return dst
        try:
            folder.mkdir(parents=True, exist_ok=True)
            log.info("writing %s from %s", dst, src)
            make(src, dst)
            return dst
        except PermissionError:
            continue
    raise InputError(f"cannot write {name} next to {src} or in the cache folder")


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
        files = sorted([*base.glob("model/*.py"), base / "checkpoint.py"])
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
    if not path.is_file():
        log.info("exporting %s at %dx%d to %s", model.model_id, height, width, path)
        export_onnx(model, path, height, width, opset=opset)
    return path


def _source_key(checkpoint: Any, height: int, width: int) -> str | None:
    """A key of a checkpoint *source* that needs no loading: the ``random:`` spec, or the
    file's absolute path, size and modification time. ``None`` for loaded modules."""
    if isinstance(checkpoint, torch.nn.Module):
        return None
    spec = str(checkpoint)
    if not spec.startswith("random:"):
        try:
            st = Path(spec).stat()
        except OSError:
            return None  # let loading report the problem
        spec = f"{Path(spec).resolve()}|{st.st_size}|{st.st_mtime_ns}"
    parts = [spec, str(height), str(width), torch.__version__, _model_code_hash()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def cached_export_of(
    checkpoint: Any, height: int, width: int, cache: str | Path | None = None
) -> Path:
    """The cached ONNX export of a checkpoint (path, ``random:`` spec or loaded `RVM`).

    A checkpoint given by path or spec is remembered by `_source_key`, so a later call
    finds its export without loading the checkpoint (fast start of the node / replay).
    """
    from rvm_ros.runtime.source import load_any

    key = _source_key(checkpoint, height, width)
    index = cache_dir(cache) / "onnx" / "sources" / f"{key}.txt" if key else None
    if index is not None and index.is_file():
        known = Path(index.read_text().strip())
        if known.is_file():
            return known
    path = export_cached(load_any(checkpoint), height, width, cache)
    if index is not None:
        index.parent.mkdir(parents=True, exist_ok=True)
        tmp = index.with_name(f"{index.name}.{os.getpid()}.part")
        tmp.write_text(str(path.resolve()) + "\n")
        tmp.replace(index)
    return path
