"""Refuse weights holding NaN or infinity where they enter (conversion, loading)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from rvm_ros.checkpoint.errors import CheckpointError
from rvm_ros.errors import listing


def check_finite(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise unless every floating tensor of ``state`` is finite.

    A model with one NaN weight gives NaN features for every frame; it is refused here,
    naming the tensor, instead of running and dropping every frame downstream.

    Args:
        state: Parameter name -> tensor.
        where: The checkpoint (for the message).

    Raises:
        CheckpointError: ``non_finite_weights``, naming the first tensors and their counts.
    """
    bad = []
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            count = int((~torch.isfinite(tensor)).sum())
            bad.append(f"{name} ({count} of {tensor.numel()} values NaN/inf)")
    if bad:
        raise CheckpointError(
            f"{where}: non-finite weights in {listing(bad)}; refusing this checkpoint",
            cause="non_finite_weights",
        )
