"""Checkpoints: official ``.npz`` and project ``.safetensors``; validation, conversion, loading.

Official files are flat ``.npz`` archives keyed by Flax parameter path. They are read
without pickle: the zip headers and every member's ``.npy`` header are parsed first, the
architecture is derived from the shapes and checked for consistency, and only then are
arrays read. Project files are safetensors with the :class:`RVMConfig` JSON stored under
metadata key ``rvm_config`` (and ``source_sha256``, the sha256 of the file converted).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rvm_ros.checkpoint.builtin import resolve
from rvm_ros.checkpoint.errors import CheckpointError
from rvm_ros.checkpoint.finite import check_finite
from rvm_ros.checkpoint.npz import read_npz_header, read_official
from rvm_ros.checkpoint.official import config_from_official_shapes
from rvm_ros.checkpoint.random import parse_random, random_model
from rvm_ros.checkpoint.safetensors import read_safetensors_config
from rvm_ros.fsutil import file_sha256, not_a_file
from rvm_ros.model import RVM, RVMConfig

# --------------------------------------------------------------------------- helpers


# ------------------------------------------------------------- official key layout

# Transform kinds from an official (Flax) array to the torch parameter.
#   vec: as is; dense: (in, out) -> (out, in); qkv: (D, h, hd) -> (h*hd, D);
#   qkv_bias: (h, hd) -> (h*hd,); out: (h, hd, D) -> (D, h*hd); patch: (1, p, p, 3, D) -> (D, p*p*3)


# ------------------------------------------------------------------ official .npz


# --------------------------------------------------------------- project .safetensors


# ------------------------------------------------------------------------ public API


def read_config(path: str | os.PathLike[str]) -> RVMConfig:
    """Architecture of a checkpoint (``.npz``, ``.safetensors``, ``random:``, ``default``),
    not loading it."""
    spec = resolve(path)
    if spec.startswith("random:"):
        return RVMConfig.from_variant(parse_random(spec)[0])
    p = Path(spec)
    if p.suffix == ".npz":
        return config_from_official_shapes(read_npz_header(p).shapes)
    _check_not_engine(p)
    return read_safetensors_config(p)[0]


def _check_not_engine(p: Path) -> None:
    """A TensorRT plan is no weights file: say what it needs instead of a format error."""
    if p.suffix not in (".plan", ".engine"):
        return
    side = p.with_name(p.name + ".json")
    if not side.is_file():
        raise CheckpointError(
            f"{p} is a TensorRT engine without its sidecar {side.name} (written beside it "
            "by `rvm-ros export --format engine`); engines load only with it, on the "
            "tensorrt backend"
        )
    raise CheckpointError(
        f"{p} is a TensorRT engine: it runs on the tensorrt backend only (give the "
        ".safetensors / .npz it was built from for other backends)"
    )


def load_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> RVM:
    """Load an RVM model in eval mode.

    Args:
        path: Official ``.npz``, project ``.safetensors``, ``random:<variant>[:<seed>]``, or
            a shipped model (``default`` / ``builtin:default``).
        device: Torch device.
        dtype: Parameter dtype (float32, bfloat16 or float16).

    Returns:
        The model; ``model.model_id`` is ``<variant>-<sha12>`` or ``<variant>-random<seed>``.

    Raises:
        CheckpointError: Unreadable or inconsistent checkpoint.
    """
    spec = resolve(path)
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"load_model: unsupported dtype {dtype}")
    if spec.startswith("random:"):
        variant, seed = parse_random(spec)
        model = random_model(variant, seed)
    else:
        p = Path(spec)
        if (why := not_a_file(p)) is not None:
            raise CheckpointError(
                f"checkpoint {p} not found" if why == "no such file" else f"checkpoint {p}: {why}"
            )
        _check_not_engine(p)
        if p.suffix == ".npz":
            config, state, with_decoder = read_official(p)
        elif p.suffix == ".safetensors":
            from safetensors.torch import load_file

            config, with_decoder = read_safetensors_config(p)
            state = load_file(str(p))
            check_finite(state, str(p))
        else:
            raise CheckpointError(
                f"{p}: unknown checkpoint type {p.suffix!r} (expected .npz or .safetensors)"
            )
        model_id = f"{config.variant}-{file_sha256(p)[:12]}"
        with torch.device("meta"):  # no wasted random init: the weights come from the file
            model = RVM(config, with_decoder=with_decoder, model_id=model_id)
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
