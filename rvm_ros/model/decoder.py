"""Masked-reconstruction decoder: embedders, mask token, cross-attention decoder, detokenizer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rvm_ros.model.config import RVMConfig
from rvm_ros.model.layers import CrossTransformer
from rvm_ros.model.posenc import sinusoid_table

NUM_DELTAS = 64


class Decoder(nn.Module):
    """Predicts the pixels of a masked target frame from its visible tokens and the source.

    Args:
        config: Model sizes (``dim``, ``dec_*``, ``patch_size``).
    """

    def __init__(self, config: RVMConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.dec_dim = config.dec_dim
        self.decoder_embedder = nn.Linear(config.dim, config.dec_dim)
        self.delta_embedder = nn.Linear(NUM_DELTAS, config.dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, config.dec_dim))
        self.transformer = CrossTransformer(
            config.dec_dim, config.dec_layers, config.dec_heads, config.dec_mlp
        )
        self.detokenizer = nn.Linear(config.dec_dim, config.patch_size * config.patch_size * 3)

    def embed_source(self, source_features: torch.Tensor) -> torch.Tensor:
        """Core outputs ``[B, K*N, D]`` -> decoder key/values ``[B, K*N, Dd]``."""
        out: torch.Tensor = self.decoder_embedder(source_features)
        return out

    def forward(
        self,
        kv: torch.Tensor,
        target_encoded: torch.Tensor,
        visible_indices: torch.Tensor,
        delta: torch.Tensor | None,
        grid: tuple[int, int],
    ) -> torch.Tensor:
        """Reconstruct one target frame.

        Args:
            kv: Embedded source tokens ``[B, M, Dd]`` (:meth:`embed_source`).
            target_encoded: Encoder output for CLS + visible target tokens ``[B, 1+V, D]``.
            visible_indices: Row-major patch index of each visible token ``[B, V]`` (int64).
            delta: Frame offset of the target ``[B]`` in ``[0, 64)``, or None.
            grid: Token grid ``(h, w)`` of the target.

        Returns:
            Pixels ``[B, h*16, w*16, 3]``.
        """
        h, w = grid
        b = kv.shape[0]
        emb = self.decoder_embedder(target_encoded)  # [B, 1+V, Dd]
        cls, visible = emb[:, :1], emb[:, 1:]  # [B, 1, Dd], [B, V, Dd]
        queries = self.mask_token.to(emb.dtype).expand(b, h * w, self.dec_dim)  # [B, hw, Dd]
        index = visible_indices.unsqueeze(-1).expand(-1, -1, self.dec_dim)  # [B, V, Dd]
        queries = queries.scatter(1, index, visible)  # [B, hw, Dd]
        table = torch.from_numpy(sinusoid_table(h * w, self.dec_dim))  # [hw, Dd]
        queries = queries + table.to(device=emb.device, dtype=emb.dtype)
        if delta is not None:
            onehot = F.one_hot(delta.long(), NUM_DELTAS).to(emb.dtype)  # [B, 64]
            queries = queries + self.delta_embedder(onehot).unsqueeze(1)  # [B, hw, Dd]
        x = torch.cat([cls, queries], dim=1)  # [B, 1+hw, Dd]
        x = self.transformer(x, kv)  # [B, 1+hw, Dd]
        patches: torch.Tensor = self.detokenizer(x[:, 1:])  # [B, hw, p*p*3]
        p = self.patch_size
        pixels = patches.reshape(b, h, w, p, p, 3).permute(0, 1, 3, 2, 4, 5)  # [B, h, p, w, q, 3]
        return pixels.reshape(b, h * p, w * p, 3)
