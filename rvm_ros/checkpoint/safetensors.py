"""The project's checkpoint format: safetensors with the architecture config in the metadata."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

from rvm_ros.checkpoint.card import CARD_KEY, ModelCard, card_from_metadata
from rvm_ros.checkpoint.errors import CheckpointError
from rvm_ros.checkpoint.official import check_state_dict
from rvm_ros.errors import TooLarge
from rvm_ros.fsutil import atomic_write, not_a_file
from rvm_ros.model import RVMConfig

CONFIG_KEY = "rvm_config"


SOURCE_SHA_KEY = "source_sha256"


FORMAT_KEY = "format"


FORMAT_VALUE = "rvm_ros"


def save_safetensors(
    state: Mapping[str, torch.Tensor],
    config: RVMConfig,
    path: str | os.PathLike[str],
    source_sha256: str | None = None,
    card: ModelCard | None = None,
) -> Path:
    """Write a project checkpoint atomically (temporary file, then rename).

    Args:
        state: Torch-named tensors (an :class:`RVM` state dict).
        config: Architecture, stored as JSON under metadata ``rvm_config``.
        path: Output ``.safetensors`` path.
        source_sha256: sha256 of the file the weights came from (stored as metadata).
        card: What the weights were trained for (input size, data, steps, held-out
            figures), stored as JSON under metadata ``rvm_card``; None: no card.

    Returns:
        The written path. No file is left behind on failure.
    """
    from safetensors.torch import save_file

    path = Path(path)
    with_decoder = any(k.startswith("decoder.") for k in state)
    check_state_dict(state, config, with_decoder, str(path))
    metadata = {CONFIG_KEY: config.to_json(), FORMAT_KEY: FORMAT_VALUE}
    if source_sha256:
        metadata[SOURCE_SHA_KEY] = source_sha256
    if card is not None:
        metadata[CARD_KEY] = card.to_json()
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}

    def write(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except Exception as exc:  # the writer's own error type; a full disk is an OSError
            if "I/O error" in str(exc):
                raise OSError(f"cannot write {path}: {exc}") from None
            raise
        canonical_header(tmp)

    atomic_write(path, write)
    return path


def canonical_header(path: Path) -> None:
    """Rewrite a safetensors header with its keys in sorted order, in place.

    The writer keeps metadata in a hash map whose order changes from process to process,
    so the same weights would get another sha256 (and model id) each time they are saved.
    The header keeps its length (space padding, as the format allows).
    """
    with open(path, "r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        meta = header.pop("__metadata__", None)
        ordered = {"__metadata__": dict(sorted(meta.items()))} if meta is not None else {}
        ordered.update(sorted(header.items()))
        text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > size:  # cannot happen for the same content; keep the file as is
            return
        f.seek(8)
        f.write(text + b" " * (size - len(text)))


def write_card(
    src: str | os.PathLike[str], card: ModelCard, dst: str | os.PathLike[str] | None = None
) -> Path:
    """Store ``card`` in a project checkpoint's metadata; the tensor bytes stay as they are.

    Only the header changes (its length too): the data section is copied byte for byte, so
    the weights are identical while the file's sha256 (and model id) change.

    Args:
        src: A project ``.safetensors``.
        card: The card to record (replaces any card there).
        dst: Output path (default ``src``, replaced atomically once complete).

    Returns:
        The written path.

    Raises:
        CheckpointError: ``src`` is no project checkpoint.
    """
    src = Path(src)
    read_safetensors_config(src)  # a project checkpoint, consistent
    out = Path(dst) if dst is not None else src
    with open(src, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        meta = dict(header.pop("__metadata__", None) or {})
        meta[CARD_KEY] = card.to_json()
        ordered: dict[str, object] = {"__metadata__": dict(sorted(meta.items()))}
        ordered.update(sorted(header.items()))
        text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
        text += b" " * (-len(text) % 8)  # the writer's 8-byte alignment of the data

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as out_file:
                out_file.write(len(text).to_bytes(8, "little") + text)
                shutil.copyfileobj(f, out_file)  # the data section, unchanged

        atomic_write(out, write)
    return out


def read_safetensors_config(path: str | os.PathLike[str]) -> tuple[RVMConfig, bool]:
    """Config and decoder presence of a project checkpoint, checked against its tensor shapes.

    Reads only the safetensors header; no tensor is loaded.

    Raises:
        CheckpointError: Not a project checkpoint, or shapes that do not fit its config.
    """
    from safetensors import safe_open

    path = Path(path)
    if (why := not_a_file(path)) is not None:
        raise CheckpointError(f"{path}: {why}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if CONFIG_KEY not in metadata:
        raise CheckpointError(
            f"{path}: safetensors file without '{CONFIG_KEY}' metadata; not written by "
            "rvm_ros (convert official .npz files with `rvm-ros convert`)"
        )
    try:
        config = RVMConfig.from_json(metadata[CONFIG_KEY])
    except TooLarge as exc:
        raise CheckpointError(
            f"{path}: invalid '{CONFIG_KEY}' metadata: {exc}", cause="too_large"
        ) from None
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid '{CONFIG_KEY}' metadata: {exc}") from None
    card_from_metadata(metadata, str(path))  # a card that is there must parse
    with_decoder = any(k.startswith("decoder.") for k in shapes)
    check_state_dict(shapes, config, with_decoder, str(path))
    return config, with_decoder
