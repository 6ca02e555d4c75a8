"""Official ``.npz`` -> project ``.safetensors``."""

from __future__ import annotations

import os
from pathlib import Path

from rvm_ros.checkpoint.card import official_card
from rvm_ros.checkpoint.npz import read_official
from rvm_ros.checkpoint.safetensors import save_safetensors
from rvm_ros.fsutil import file_sha256
from rvm_ros.model import RVMConfig


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    progress: bool | None = None,
) -> RVMConfig:
    """Convert an official ``.npz`` to a project ``.safetensors``.

    The output records the source file's sha256 and, for the released sizes (S, B, L, H),
    the official model card (:data:`~rvm_ros.checkpoint.card.OFFICIAL_CARD`: 256x256).

    Args:
        src: Official checkpoint.
        dst: Output path; written atomically, nothing is left behind on failure.
        progress: Progress bar (None: automatic for large files).

    Returns:
        The configuration of the converted model.

    Raises:
        CheckpointError: For unreadable, non-RVM or inconsistent input.
    """
    src = Path(src)
    config, state, _ = read_official(src, progress=progress)
    sha = file_sha256(src)
    card = official_card(config)
    save_safetensors(state, config, dst, source_sha256=sha, card=card if card.known else None)
    return config
