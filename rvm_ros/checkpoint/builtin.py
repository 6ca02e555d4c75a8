"""Checkpoints shipped inside the package, by name (``default`` / ``builtin:<name>``).

The default model is trained by ``rvm-ros train --config config/train_default.yaml`` on
this project's training material (docs/TRAINING.md); its file lives in ``rvm_ros/weights/``
and is installed with the package (pip package data, CMake ``install(DIRECTORY rvm_ros/)``).
"""

from __future__ import annotations

import os
from pathlib import Path

from rvm_ros.checkpoint.errors import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# Name -> file in WEIGHTS_DIR.
BUILTIN: dict[str, str] = {"default": "default.safetensors"}
DEFAULT_CHECKPOINT = "builtin:default"
# Input size the default model was trained at (height, width).
DEFAULT_SIZE = (128, 128)


def is_builtin(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` names a shipped checkpoint (``default`` or ``builtin:<name>``)."""
    text = str(spec)
    return text == "default" or text.startswith("builtin:")


def builtin_path(name: str = "default") -> Path:
    """Path of a shipped checkpoint.

    Raises:
        CheckpointError: Unknown name, or the file is missing from this installation.
    """
    if name not in BUILTIN:
        raise CheckpointError(
            f"unknown built-in checkpoint {name!r}; known: {', '.join(sorted(BUILTIN))}"
        )
    path = WEIGHTS_DIR / BUILTIN[name]
    if not path.is_file():
        raise CheckpointError(f"built-in checkpoint {name!r} is missing ({path} not installed)")
    return path


def resolve(spec: str | os.PathLike[str]) -> str:
    """``default`` / ``builtin:<name>`` -> the shipped file's path; anything else unchanged."""
    text = str(spec)
    if not is_builtin(text):
        return text
    name = "default" if text == "default" else text.split(":", 1)[1]
    return str(builtin_path(name))
