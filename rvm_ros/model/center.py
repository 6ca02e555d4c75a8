"""Feature centre: the per-cell mean of the recurrent features, removed from the output.

A trained RVM's recurrent state carries a large component that depends only on where a
cell is (the encoder's position table passes through every block), the same in every
scene. The state needs it (the decoder and the next step read it), but as a *feature* for
matching, propagation or a planner it is noise: it makes every scene look alike. A model
with a feature centre subtracts the mean state of each cell (and of the CLS token), fitted
on training data (:mod:`rvm_ros.training.center`), from the features it publishes; the
recurrent state itself is unchanged.

The centre is stored for the token grid it was fitted on and resized to other grids with
the same jax-style bicubic resize as the position table (:mod:`rvm_ros.model.posenc`).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.jit._trace import TracerWarning  # torch.jit re-exports it outside __all__

from rvm_ros.model.posenc import resize_matrix

__all__ = ["FeatureCenter"]


class FeatureCenter(nn.Module):
    """Mean recurrent state per token, for the grid it was fitted on.

    Args:
        dim: Token width D.
        grid: ``(h, w)`` token grid of the fit.

    The buffer ``table`` ``[1 + h*w, D]`` (row 0: CLS) is saved in checkpoints; it is not a
    parameter (training never changes it).
    """

    def __init__(self, dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.register_buffer("table", torch.zeros(1 + self.grid[0] * self.grid[1], dim))

    def forward(self, h: int, w: int) -> torch.Tensor:
        """The centre ``[1 + h*w, D]`` for an ``h x w`` grid (resized when it differs)."""
        table = self.get_buffer("table")  # [1 + gh*gw, D]
        with warnings.catch_warnings():
            # A fixed input size is a constant grid by design (as for the position table).
            warnings.simplefilter("ignore", category=TracerWarning)
            h, w = int(h), int(w)
        if (h, w) == self.grid:
            return table
        gh, gw = self.grid
        cells = table[1:].reshape(gh, gw, -1)  # [gh, gw, D]
        rows = torch.tensor(resize_matrix(gh, h), dtype=table.dtype, device=table.device)
        cols = torch.tensor(resize_matrix(gw, w), dtype=table.dtype, device=table.device)
        cells = torch.einsum("ih,hwc->iwc", rows, cells)  # [h, gw, D]
        cells = torch.einsum("jw,iwc->ijc", cols, cells)  # [h, w, D]
        return torch.cat([table[:1], cells.reshape(h * w, -1)], dim=0)  # [1 + h*w, D]
