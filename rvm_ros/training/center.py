"""Fit a model's feature centre on training data (:mod:`rvm_ros.model.center`).

The centre is the mean recurrent state of each token over many training sequences, after a
few warm-up steps from the zero state (what the node publishes once a stream has started).
Subtracting it removes the component of the features that depends on the cell position
alone; it does not change the state, the recurrence or the reconstruction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from rvm_ros.model import RVM
from rvm_ros.training.config import DataSection
from rvm_ros.training.data import ClipDataset

__all__ = ["CenterFit", "fit_center", "sequence_data", "with_center", "without_center"]


@dataclass(frozen=True)
class CenterFit:
    """How a centre is fitted.

    Attributes:
        clips: Training sequences averaged.
        frames: Frames per sequence (recurrent steps from the zero state).
        warmup: Leading steps of each sequence left out of the mean.
        batch: Sequences per forward pass.
        seed: Seed of the sequences (clip ``i`` is drawn from ``rng([seed, i])``).
    """

    clips: int = 96
    frames: int = 16
    warmup: int = 4
    batch: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.clips, self.frames, self.batch) < 1 or self.warmup < 0:
            raise ValueError("CenterFit: clips, frames and batch must be >= 1, warmup >= 0")
        if self.warmup >= self.frames:
            raise ValueError(
                f"CenterFit: warmup {self.warmup} leaves none of the {self.frames} frames"
            )


def sequence_data(data: DataSection, fit: CenterFit) -> DataSection:
    """The data section that draws ``fit.frames``-frame sequences (one dummy target)."""
    return replace(
        data, source_frames=fit.frames, target_frames=1, min_offset=1, max_offset=1, scene_cut=0.0
    )


@torch.no_grad()
def fit_center(
    model: RVM,
    dataset: ClipDataset,
    fit: CenterFit,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Mean state per token of ``model`` over the sequences of ``dataset``.

    Args:
        model: The model (its current weights; float32 is used).
        dataset: Clips whose source frames are the sequences (see :func:`sequence_data`).
        fit: Counts and seed (``dataset``'s own seed is used for the draws).
        progress: Called with the number of sequences done after each batch.

    Returns:
        float32 ``[1 + h*w, D]`` for the dataset's frame size.
    """
    total: torch.Tensor | None = None
    count = 0
    for first in range(0, fit.clips, fit.batch):
        idx = range(first, min(fit.clips, first + fit.batch))
        frames = np.stack([dataset[i].source for i in idx])  # [B, F, H, W, 3] uint8
        b, f, height, width, _ = frames.shape
        state = model.init_state(b, height, width)  # [B, N, D]
        for t in range(f):
            _, state = model.step(torch.from_numpy(frames[:, t]), state)
            if t >= fit.warmup:
                part = state.float().sum(0)  # [N, D]
                total = part if total is None else total + part
                count += b
        if progress is not None:
            progress(idx.stop)
    assert total is not None  # fit.clips >= 1 and warmup < frames
    return total / count


def with_center(model: RVM, table: torch.Tensor, grid: tuple[int, int]) -> RVM:
    """A copy of ``model`` (same weights, decoder if it has one) with the feature centre
    ``table`` ``[1 + h*w, D]`` fitted on an ``h x w`` grid."""
    if tuple(table.shape) != (1 + grid[0] * grid[1], model.config.dim):
        raise ValueError(
            f"with_center: table {tuple(table.shape)} does not fit grid {grid} and "
            f"D {model.config.dim}"
        )
    return _rebuilt(model, grid, table).eval()


def without_center(model: RVM) -> RVM:
    """A copy of ``model`` without a feature centre (its features are the state)."""
    return model if model.feature_center is None else _rebuilt(model, None, None)


def _rebuilt(model: RVM, grid: tuple[int, int] | None, table: torch.Tensor | None) -> RVM:
    """``model``'s weights in a model whose ``center_grid`` is ``grid`` (centre ``table``)."""
    config = replace(model.config, center_grid=grid)
    out = RVM(config, with_decoder=model.decoder is not None, model_id=model.model_id)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("feature_center.")}
    if table is not None:
        state["feature_center.table"] = table.detach().to(torch.float32).cpu()
    out.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return out
