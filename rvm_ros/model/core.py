"""Gated transformer recurrent core (GRU-like)."""

from __future__ import annotations

import torch
from torch import nn

from rvm_ros.model.config import RVMConfig
from rvm_ros.model.layers import CrossTransformer, LayerNorm

STATE_LN_EPS = 1e-4


class GatedCore(nn.Module):
    """One recurrent update of the state from the encoded frame.

    ``u = sigmoid(W_iu e + W_su s)``, ``r = sigmoid(W_ir e + W_sr s)``,
    ``h = XT(e, kv=r * LN_s(s))``, ``s_new = (1 - u) * s + u * h``.
    """

    def __init__(self, config: RVMConfig) -> None:
        super().__init__()
        d = config.dim
        self.input_update = nn.Linear(d, d, bias=False)
        self.input_reset = nn.Linear(d, d, bias=False)
        self.state_update = nn.Linear(d, d, bias=False)
        self.state_reset = nn.Linear(d, d, bias=False)
        self.state_norm = LayerNorm(d, eps=STATE_LN_EPS, bias=False)
        self.transformer = CrossTransformer(
            d, config.core_layers, config.core_heads, config.core_mlp
        )

    def forward(self, encoded: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``encoded [B, N, D]``, ``state [B, N, D]`` -> new state ``[B, N, D]``."""
        update = torch.sigmoid(self.input_update(encoded) + self.state_update(state))
        reset = torch.sigmoid(self.input_reset(encoded) + self.state_reset(state))
        kv = reset * self.state_norm(state)  # [B, N, D]
        candidate: torch.Tensor = self.transformer(encoded, kv)  # [B, N, D]
        return (1.0 - update) * state + update * candidate
