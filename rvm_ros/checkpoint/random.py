"""``random:<variant>[:seed]`` checkpoints: random weights for tests, demos and benchmarks."""

from __future__ import annotations

import torch

from rvm_ros.checkpoint.errors import CheckpointError
from rvm_ros.model import RVM, RVMConfig
from rvm_ros.model.config import VARIANTS


def random_model(variant: str, seed: int = 0, with_decoder: bool = True) -> RVM:
    """A model of a named size with deterministic random weights (tests, demos, benchmarks)."""
    config = RVMConfig.from_variant(variant)
    model = RVM(config, with_decoder=with_decoder, model_id=f"{variant}-random{seed}")
    return randomize_(model, seed)


def randomize_(model: RVM, seed: int = 0) -> RVM:
    """Fill ``model`` (any size) in place with the deterministic random weights of ``random:``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=gen))
            elif name.endswith("norm.bias") or name.endswith(".bias"):
                param.copy_(0.02 * torch.randn(param.shape, generator=gen))
            else:
                fan_in = param.shape[-1] if param.dim() > 1 else 1
                std = 0.02 if param.dim() == 1 or fan_in == 1 else fan_in**-0.5
                if name.endswith(("cls_token", "mask_token")):
                    std = 0.02
                param.copy_(std * torch.randn(param.shape, generator=gen))
    return model


def parse_random(spec: str) -> tuple[str, int]:
    """``random:<variant>[:<seed>]`` -> ``(variant, seed)`` (seed 0 when not given).

    Raises:
        CheckpointError: Not that form, or an unknown variant or a non-integer seed.
    """
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] != "random" or parts[1] not in VARIANTS:
        raise CheckpointError(
            f"invalid random checkpoint {spec!r}: use random:<variant>[:<seed>] with variant "
            f"one of {', '.join(VARIANTS)}"
        )
    seed = 0
    if len(parts) == 3:
        try:
            seed = int(parts[2])
        except ValueError:
            raise CheckpointError(f"invalid seed {parts[2]!r} in {spec!r}") from None
    return parts[1], seed
