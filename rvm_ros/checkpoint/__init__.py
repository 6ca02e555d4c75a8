"""Checkpoints: official ``.npz`` files, the project's ``.safetensors``, random weights.

Layout: :mod:`.official` (pure key/shape remap between the official Flax layout and the
torch model), :mod:`.npz` (pickle-free reader of official files), :mod:`.safetensors`
(the project format, architecture config stored inside), :mod:`.card` (the model card in
the metadata: training input size, data, steps, held-out figures; the run's input size
from it), :mod:`.random` (``random:<variant>``), :mod:`.convert` (``.npz`` ->
``.safetensors``), :mod:`.fetch` (download of official files), :mod:`.load` (``load_model``:
any of the above by name), :mod:`.progress` (byte progress bars).
"""

from __future__ import annotations

from rvm_ros.checkpoint.card import ModelCard, model_input_size, read_card
from rvm_ros.checkpoint.convert import convert
from rvm_ros.checkpoint.errors import CheckpointError
from rvm_ros.checkpoint.load import load_model, read_config
from rvm_ros.checkpoint.npz import NpzHeader, read_npz_header, read_official
from rvm_ros.checkpoint.official import (
    check_official_shapes,
    config_from_official_shapes,
    official_layout,
    official_to_torch,
    state_to_official,
    torch_to_official,
    variant_of,
)
from rvm_ros.checkpoint.random import random_model
from rvm_ros.checkpoint.safetensors import (
    CONFIG_KEY,
    FORMAT_KEY,
    FORMAT_VALUE,
    SOURCE_SHA_KEY,
    read_safetensors_config,
    save_safetensors,
    write_card,
)
from rvm_ros.fsutil import file_sha256

__all__ = [
    "CONFIG_KEY",
    "FORMAT_KEY",
    "FORMAT_VALUE",
    "SOURCE_SHA_KEY",
    "CheckpointError",
    "ModelCard",
    "NpzHeader",
    "check_official_shapes",
    "config_from_official_shapes",
    "convert",
    "file_sha256",
    "load_model",
    "model_input_size",
    "official_layout",
    "official_to_torch",
    "random_model",
    "read_card",
    "read_config",
    "read_npz_header",
    "read_official",
    "read_safetensors_config",
    "save_safetensors",
    "state_to_official",
    "torch_to_official",
    "variant_of",
    "write_card",
]
