"""Building blocks: LayerNorm, multi-head attention, MLP, encoder and cross-attention blocks.

Shapes: B batch, N query tokens, M key/value tokens, D width.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6


def is_tracing() -> bool:
    """True while the module is being traced or compiled (ONNX export, torch.compile)."""
    # torch.jit.is_tracing: documented public API, but unannotated and missing from
    # torch.jit's __all__; typed here rather than reaching into torch._C.
    jit_is_tracing = cast(Callable[[], bool], torch.jit.is_tracing)  # type: ignore[attr-defined]
    if jit_is_tracing():
        return True
    compiler = getattr(torch, "compiler", None)
    is_compiling = getattr(compiler, "is_compiling", None)
    return bool(is_compiling()) if is_compiling is not None else False


class LayerNorm(nn.Module):
    """LayerNorm over the last axis, computed in float32 whatever the parameter dtype.

    Args:
        dim: Normalised width.
        eps: Epsilon added to the variance.
        bias: Whether a learned bias is added (the core's state norm has none).
    """

    def __init__(self, dim: int, eps: float = LN_EPS, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias: nn.Parameter | None = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x [..., D]``; the result has the dtype of ``x``."""
        bias = None if self.bias is None else self.bias.float()
        y = F.layer_norm(x.float(), (x.shape[-1],), self.weight.float(), bias, self.eps)
        return y.to(x.dtype)


class Attention(nn.Module):
    """Multi-head dot-product attention with separate q, k, v projections (with bias).

    The softmax runs in float32.

    Args:
        dim: Model width D (inputs and output).
        heads: Number of heads; the head width is ``dim // heads``.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = dim // heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        # [B, n, D] -> [B, heads, n, hd]
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from ``x [B, N, D]`` to ``kv [B, M, D]`` (``x`` itself when None)."""
        kv = x if kv is None else kv
        q = self._split(self.query(x)) * (1.0 / math.sqrt(self.head_dim))  # [B, h, N, hd]
        k = self._split(self.key(kv))  # [B, h, M, hd]
        v = self._split(self.value(kv))  # [B, h, M, hd]
        scores = torch.matmul(q, k.transpose(-1, -2))  # [B, h, N, M]
        probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)
        ctx = torch.matmul(probs, v)  # [B, h, N, hd]
        b, _, n, _ = ctx.shape
        ctx = ctx.transpose(1, 2).reshape(b, n, self.heads * self.head_dim)  # [B, N, D]
        out: torch.Tensor = self.out(ctx)
        return out


class MLP(nn.Module):
    """Linear -> GELU (tanh approximation) -> Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.dense_in = nn.Linear(dim, hidden)
        self.dense_out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., D] -> [..., D]``."""
        hidden: torch.Tensor = self.dense_in(x)
        out: torch.Tensor = self.dense_out(F.gelu(hidden, approximate="tanh"))
        return out


class EncoderBlock(nn.Module):
    """Pre-norm ViT block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.attention_norm = LayerNorm(dim)
        self.attention = Attention(dim, heads)
        self.mlp_norm = LayerNorm(dim)
        self.mlp = MLP(dim, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, D] -> [B, N, D]``."""
        x = x + self.attention(self.attention_norm(x))
        out: torch.Tensor = x + self.mlp(self.mlp_norm(x))
        return out


class CrossBlock(nn.Module):
    """Cross-attention block: cross-attention to ``kv``, MLP, then self-attention.

    ``x = x + CrossAttn(LN(x), kv); x = x + MLP(LN(x)); x = x + SelfAttn(LN(x))``;
    ``kv`` is used as given (not normalised here).
    """

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.ca_attention_norm = LayerNorm(dim)
        self.ca_attention = Attention(dim, heads)
        self.mlp_norm = LayerNorm(dim)
        self.mlp = MLP(dim, mlp)
        self.attention_norm = LayerNorm(dim)
        self.attention = Attention(dim, heads)

    def forward(self, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """``x [B, N, D]``, ``kv [B, M, D]`` -> ``[B, N, D]``."""
        x = x + self.ca_attention(self.ca_attention_norm(x), kv)
        x = x + self.mlp(self.mlp_norm(x))
        out: torch.Tensor = x + self.attention(self.attention_norm(x))
        return out


class CrossTransformer(nn.Module):
    """A stack of :class:`CrossBlock` followed by a final LayerNorm."""

    def __init__(self, dim: int, layers: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(CrossBlock(dim, heads, mlp) for _ in range(layers))
        self.output_norm = LayerNorm(dim)

    def forward(self, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """``x [B, N, D]``, ``kv [B, M, D]`` -> ``[B, N, D]``."""
        for block in self.blocks:
            x = block(x, kv)
        out: torch.Tensor = self.output_norm(x)
        return out
