"""Frame encoder: patch embedding, position table, CLS token and the ViT blocks."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.jit._trace import TracerWarning  # torch.jit re-exports it outside __all__

from rvm_ros.model.config import RVMConfig
from rvm_ros.model.layers import EncoderBlock, LayerNorm, is_tracing
from rvm_ros.model.posenc import grid_position_table


def patchify(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut ``[B, H, W, C]`` into row-major patches ``[B, h*w, p*p*C]`` (order p, q, c)."""
    b, height, width, c = frames.shape
    h, w = height // patch, width // patch
    x = frames.reshape(b, h, patch, w, patch, c)  # [B, h, p, w, q, C]
    x = x.permute(0, 1, 3, 2, 4, 5)  # [B, h, w, p, q, C]
    return x.reshape(b, h * w, patch * patch * c)  # [B, h*w, p*q*C]


class PositionTable(nn.Module):
    """Sinusoid position table of a token grid, as a constant tensor cached per grid.

    The table is computed in numpy (see :mod:`rvm_ros.model.posenc`), so under tracing it
    is a constant of the graph; it is not a parameter and not saved in checkpoints.
    """

    def __init__(self, dim: int, pos_grid: int) -> None:
        super().__init__()
        self.dim = dim
        self.pos_grid = pos_grid
        self._cache: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}

    def forward(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Table ``[h*w, D]`` for an ``h x w`` grid on ``device`` in ``dtype``."""
        tracing = is_tracing()
        with warnings.catch_warnings():
            # The table is a constant of the grid size by design (fixed input size).
            warnings.simplefilter("ignore", category=TracerWarning)
            h, w = int(h), int(w)  # plain ints even when shapes are traced
        key = (h, w, device, dtype)
        table = None if tracing else self._cache.get(key)
        if table is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=TracerWarning)
                table = torch.tensor(
                    grid_position_table(self.dim, self.pos_grid, h, w), dtype=dtype, device=device
                )
            if not tracing:
                self._cache[key] = table
        return table


class Encoder(nn.Module):
    """ViT frame encoder.

    ``tokens(frames)`` gives the position-encoded patch tokens; ``encode(tokens)``
    prepends the CLS token and runs the blocks and the final LayerNorm.
    """

    def __init__(self, config: RVMConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        d = config.dim
        self.patch_embedding = nn.Linear(config.patch_size * config.patch_size * 3, d)
        self.cls_token = nn.Parameter(torch.zeros(1, d))
        self.position = PositionTable(d, config.pos_grid)
        self.layers = nn.ModuleList(
            EncoderBlock(d, config.enc_heads, config.enc_mlp) for _ in range(config.enc_layers)
        )
        self.norm = LayerNorm(d)

    def tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """Float frames ``[B, H, W, 3]`` -> patch tokens + position ``[B, h*w, D]``."""
        _, height, width, _ = frames.shape
        h, w = height // self.patch_size, width // self.patch_size
        x: torch.Tensor = self.patch_embedding(patchify(frames, self.patch_size))  # [B, h*w, D]
        position: torch.Tensor = self.position(h, w, x.device, x.dtype)  # [h*w, D]
        return x + position

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``[B, n, D]`` -> encoded ``[B, 1+n, D]`` (token 0 = CLS)."""
        b = tokens.shape[0]
        cls = self.cls_token.to(tokens.dtype).expand(b, 1, -1)  # [B, 1, D]
        x = torch.cat([cls, tokens], dim=1)  # [B, 1+n, D]
        for layer in self.layers:
            x = layer(x)
        out: torch.Tensor = self.norm(x)
        return out

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Float frames ``[B, H, W, 3]`` -> encoded tokens ``[B, 1+h*w, D]``."""
        return self.encode(self.tokens(frames))
