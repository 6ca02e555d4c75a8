"""`PlanningHead`: future ego poses from all cameras' scene tokens (and past poses).

Tokens of every camera are projected to the head's width, tagged with a learned camera
and position embedding, and pooled by attention of a few learned queries over all
cameras' tokens at once (cameras marked invalid are masked out). The pooled queries, with
the past poses where configured, go through an MLP that predicts ``(x, y, yaw)`` of the
ego at each horizon in the current ego frame (x forward, y left, radians).
"""

from __future__ import annotations

import torch
from torch import nn

from rvm_ros.heads.config import HeadConfig
from rvm_ros.heads.temporal import TemporalAggregator

__all__ = ["PlanningHead"]


class PlanningHead(nn.Module):
    """Attention pooling over tokens + MLP -> poses at fixed horizons.

    Args:
        config: Sizes (``token_dim`` 0: past poses only; ``window`` > 1: a
            :class:`TemporalAggregator` first).
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = c = config
        k = len(c.horizons_s)
        self.aggregator: TemporalAggregator | None = None
        pooled = 0
        if c.token_dim:
            if c.window > 1:
                self.aggregator = TemporalAggregator(c.token_dim, c.dim, c.window, c.heads)
                self.proj: nn.Module = nn.Identity()
            else:
                self.proj = nn.Linear(c.token_dim, c.dim)
            self.in_norm = nn.LayerNorm(c.dim)
            self.pos = nn.Parameter(torch.zeros(c.max_tokens, c.dim))
            self.cam = nn.Parameter(torch.zeros(c.max_cameras, c.dim))
            self.queries = nn.Parameter(torch.zeros(c.queries, c.dim))
            for p in (self.pos, self.cam, self.queries):
                nn.init.normal_(p, std=0.02)
            self.pool = nn.MultiheadAttention(c.dim, c.heads, batch_first=True)
            pooled = c.queries * c.dim
        past = 3 * c.past_poses
        self.mlp = nn.Sequential(
            nn.LayerNorm(pooled + past) if pooled + past > 1 else nn.Identity(),
            nn.Linear(pooled + past, c.mlp),
            nn.GELU(),
            nn.Linear(c.mlp, c.mlp),
            nn.GELU(),
            nn.Linear(c.mlp, 3 * k),
        )

    def _pool(self, tokens: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """``[B, (W,) Ncam, N, C]`` -> ``[B, Q * dim]``."""
        agg = self.aggregator
        x = agg(tokens) if agg is not None else self.proj(tokens)  # [B, Ncam, N, D]
        b, ncam, n, d = x.shape
        x = self.in_norm(x + self.pos[:n] + self.cam[:ncam, None, :])
        x = x.reshape(b, ncam * n, d)  # every camera's tokens together
        mask = None
        if valid is not None:
            mask = ~valid.bool()[:, :, None].expand(b, ncam, n).reshape(b, ncam * n)
            mask = mask & ~mask.all(dim=1, keepdim=True)  # no camera valid: attend anyway
        q = self.queries[None].expand(b, -1, -1)  # [B, Q, D]
        y = self.pool(q, x, x, key_padding_mask=mask, need_weights=False)[0]  # [B, Q, D]
        return torch.as_tensor(y.reshape(b, -1))

    def forward(
        self,
        tokens: torch.Tensor | None = None,
        past: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the future poses.

        Args:
            tokens: ``[B, Ncam, N, C]`` (``[B, W, Ncam, N, C]`` with a window), or None for
                a past-poses-only head.
            past: ``[B, P, 3]`` past ``(x, y, yaw)`` in the current ego frame (oldest
                first), where ``config.past_poses`` > 0.
            valid: ``[B, Ncam]`` bool, cameras to attend to (default: all).

        Returns:
            ``[B, K, 3]`` ``(x, y, yaw)`` at ``config.horizons_s``.
        """
        parts = []
        if self.config.token_dim:
            if tokens is None:
                raise ValueError("PlanningHead: this head needs tokens")
            parts.append(self._pool(tokens, valid))
        if self.config.past_poses:
            if past is None:
                raise ValueError("PlanningHead: this head needs past poses")
            parts.append(past.reshape(past.shape[0], -1))
        out = self.mlp(torch.cat(parts, dim=1))  # [B, 3K]
        return torch.as_tensor(out.reshape(out.shape[0], -1, 3))
