"""A learned temporal aggregator over a window of per-frame tokens (no recurrence)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TemporalAggregator"]


class TemporalAggregator(nn.Module):
    """Per token position, attention over the last ``window`` frames; returns the newest.

    Each token of the newest frame attends to the same grid position in the ``window``
    frames (with a learned time embedding), the way a video transformer mixes time: the
    output carries appearance and its change over the window.

    Args:
        token_dim: Input channels C.
        dim: Output channels.
        window: Frames W.
        heads: Attention heads.
    """

    def __init__(self, token_dim: int, dim: int, window: int, heads: int = 4) -> None:
        super().__init__()
        self.window = window
        self.proj = nn.Linear(token_dim, dim)
        self.time = nn.Parameter(torch.zeros(window, dim))
        nn.init.normal_(self.time, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, W, Ncam, N, C]`` -> ``[B, Ncam, N, dim]`` (the newest frame, time-mixed)."""
        b, w, ncam, n, _c = tokens.shape
        x = self.proj(tokens) + self.time[:w, None, None, :]  # [B, W, Ncam, N, D]
        x = x.permute(0, 2, 3, 1, 4).reshape(b * ncam * n, w, -1)  # [B*Ncam*N, W, D]
        q = x[:, -1:]  # the newest frame asks
        kv = self.norm(x)
        y = q + self.attn(self.norm(q), kv, kv, need_weights=False)[0]  # [B*Ncam*N, 1, D]
        y = y + self.mlp(y)
        return torch.as_tensor(y.reshape(b, ncam, n, -1))
