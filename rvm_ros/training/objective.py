"""The masked-reconstruction objective (RVM pre-training), batched over clips and targets.

Shapes: B clips, K source frames, T targets, N = 1 + h*w tokens, D width, Dd decoder width,
V visible patches per target, P = p*p*3 values per patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rvm_ros.model import RVM
from rvm_ros.training.config import LossSection

PATCH_NORM_EPS = 1e-2  # variance floor (pixels in [0, 1]) of the per-patch normalisation


@dataclass
class LossOutput:
    """Per-clip losses (``[B]`` float32) and the total to minimise (scalar).

    Attributes:
        total: Weighted sum, mean over clips.
        pixel: Plain pixel MSE on masked patches, per clip.
        patch_norm: Per-patch normalised MSE on masked patches, per clip.
        correspondence: Correspondence cross-entropy per clip (0 where none is known).
        correspondence_count: Clips of the batch with a known correspondence.
        prediction: Reconstructed targets ``[B, T, H, W, 3]`` (float32, detached).
    """

    total: torch.Tensor
    pixel: torch.Tensor
    patch_norm: torch.Tensor
    correspondence: torch.Tensor
    correspondence_count: int
    prediction: torch.Tensor


def patchify(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """``[M, H, W, 3]`` -> ``[M, h*w, p*p*3]`` in the detokenizer's (p, q, c) order."""
    m, height, width, c = frames.shape
    h, w = height // patch, width // patch
    x = frames.reshape(m, h, patch, w, patch, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(m, h * w, patch * patch * c)


def source_features(model: RVM, source: torch.Tensor) -> torch.Tensor:
    """Per-frame core outputs of the source clips from the zero state.

    Args:
        model: The model.
        source: ``[B, K, H, W, 3]`` float in [0, 1].

    Returns:
        ``[B, K, N, D]``.
    """
    b, k = source.shape[:2]
    encoded = model.encoder(source.flatten(0, 1))  # [B*K, N, D]
    encoded = encoded.reshape(b, k, *encoded.shape[1:])  # [B, K, N, D]
    state = torch.zeros_like(encoded[:, 0])  # [B, N, D]
    feats = []
    for i in range(k):
        state = model.core(encoded[:, i], state)  # [B, N, D]
        feats.append(state)
    return torch.stack(feats, dim=1)


def reconstruct(
    model: RVM,
    feats: torch.Tensor,
    target: torch.Tensor,
    offsets: torch.Tensor,
    visible: torch.Tensor,
) -> torch.Tensor:
    """Decode every target from the source features.

    Args:
        model: The model (with decoder).
        feats: Source core outputs ``[B, K, N, D]``.
        target: ``[B, T, H, W, 3]`` float in [0, 1].
        offsets: ``[B, T]`` frame offsets (delta embedder input).
        visible: ``[B, T, V]`` visible patch indices.

    Returns:
        Predicted pixels ``[B, T, H, W, 3]``.
    """
    decoder = model.decoder
    if decoder is None:
        raise ValueError("the model has no decoder; masked reconstruction needs one")
    b, t, height, width, _ = target.shape
    h, w = model.config.grid(height, width)
    kv = decoder.embed_source(feats.flatten(1, 2))  # [B, K*N, Dd]
    kv = kv.repeat_interleave(t, dim=0)  # [B*T, K*N, Dd]
    tokens = model.encoder.tokens(target.flatten(0, 1))  # [B*T, hw, D]
    vis = visible.flatten(0, 1)  # [B*T, V]
    kept = torch.gather(tokens, 1, vis.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
    encoded = model.encoder.encode(kept)  # [B*T, 1+V, D]
    pred: torch.Tensor = decoder(kv, encoded, vis, offsets.flatten(), (h, w))  # [B*T, H, W, 3]
    return pred.reshape(b, t, height, width, 3)


def masked_patch_errors(
    pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor, patch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain and per-patch-normalised squared errors averaged over each target's masked patches.

    Args:
        pred: ``[B, T, H, W, 3]`` float32.
        target: ``[B, T, H, W, 3]`` float32 in [0, 1].
        visible: ``[B, T, V]`` visible indices (excluded from the average).
        patch: Patch side.

    Returns:
        ``(pixel, patch_norm)``, each ``[B, T]``.
    """
    b, t = pred.shape[:2]
    p = patchify(pred.flatten(0, 1), patch)  # [B*T, hw, P]
    y = patchify(target.flatten(0, 1), patch)  # [B*T, hw, P]
    masked = torch.ones(p.shape[:2], dtype=p.dtype, device=p.device)  # [B*T, hw]
    masked.scatter_(1, visible.flatten(0, 1), 0.0)
    count = masked.sum(1)  # [B*T]
    pixel = ((p - y) ** 2).mean(-1)  # [B*T, hw]
    # Structure: mean-removed error, scaled by the target patch's variance.
    yc = y - y.mean(-1, keepdim=True)
    pc = p - p.mean(-1, keepdim=True)
    var = y.var(-1, unbiased=False)  # [B*T, hw]
    norm = ((pc - yc) ** 2).mean(-1) / (var + PATCH_NORM_EPS)  # [B*T, hw]
    pixel = (pixel * masked).sum(1) / count
    norm = (norm * masked).sum(1) / count
    return pixel.reshape(b, t), norm.reshape(b, t)


def center_cells(first: torch.Tensor, later: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both frames' features ``[B, N, D]`` minus the per-token mean over the batch's clips
    and the two frames: what is the same at a cell in every clip (its position) is gone."""
    cell_mean = 0.5 * (first.mean(0, keepdim=True) + later.mean(0, keepdim=True))  # [1, N, D]
    return first - cell_mean, later - cell_mean


def correspondence_loss(
    first: torch.Tensor, later: torch.Tensor, correspondence: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of patch affinities between two frames against the known correspondence.

    Both frames' features are single steps from the zero state (what a stream's first frame
    gets), so the term rewards features that identify content, not position: the motion
    between the first source frame and a target spans several patches.

    Args:
        first: Features of the first source frame ``[B, N, D]`` (token 0 = CLS, ignored).
        later: Features of a target frame ``[B, N, D]``.
        correspondence: ``[B, h*w]``: for each patch of ``later`` the patch of ``first``
            (-1: unknown).
        temperature: Softmax temperature over the cosine similarities.

    Returns:
        ``(loss [B], has [B] bool)``; clips without a known correspondence have loss 0.
    """
    a = F.normalize(first[:, 1:].float(), dim=-1)  # [B, hw, D]
    b = F.normalize(later[:, 1:].float(), dim=-1)  # [B, hw, D]
    logits = torch.einsum("bid,bjd->bij", b, a) / temperature  # [B, hw, hw]
    target = correspondence.long()  # [B, hw]
    valid = target >= 0
    ce = F.cross_entropy(
        logits.flatten(0, 1), target.clamp(min=0).flatten(), reduction="none"
    ).reshape(target.shape)  # [B, hw]
    count = valid.sum(1)  # [B]
    loss = (ce * valid).sum(1) / count.clamp(min=1)
    return loss, count > 0


def position_share(feats: torch.Tensor) -> torch.Tensor:
    """Share of the features' variance explained by the cell position alone, over a batch.

    The per-cell mean over all clips and frames of the batch is the position component;
    its variance over cells divided by the total variance (around the grand mean) is the
    share. With ``B`` independent clips the share cannot fall below about ``1 / B``.

    Args:
        feats: ``[B, K, N, D]`` core outputs (token 0 = CLS, ignored).

    Returns:
        Scalar in [0, 1].
    """
    x = feats[:, :, 1:].float().flatten(0, 1)  # [B*K, hw, D]
    cell = x.mean(0)  # [hw, D]
    grand = cell.mean(0)  # [D]
    between = ((cell - grand) ** 2).sum(-1).mean()
    total = ((x - grand) ** 2).sum(-1).mean()
    return between / total.clamp(min=1e-12)


def compute_loss(
    model: RVM,
    source: torch.Tensor,
    target: torch.Tensor,
    offsets: torch.Tensor,
    visible: torch.Tensor,
    correspondence: torch.Tensor,
    weights: LossSection,
    autocast: bool,
) -> LossOutput:
    """The training loss of a batch.

    Args:
        model: The model (with decoder), in train mode.
        source: ``[B, K, H, W, 3]`` uint8.
        target: ``[B, T, H, W, 3]`` uint8.
        offsets: ``[B, T]`` target offsets.
        visible: ``[B, T, V]`` visible indices.
        correspondence: ``[B, T, h*w]`` known correspondences from the first source frame
            to each target (-1: none); the term uses the last (farthest) target.
        weights: Loss weights.
        autocast: Run the model under bfloat16 autocast.

    Returns:
        The losses; ``total`` is the mean over clips of the weighted per-clip sum, so the mean
        of equal-sized shards' totals equals the total of the combined batch (DDP).
    """
    device = source.device
    src = source.float() / 255.0
    tgt = target.float() / 255.0
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        feats = source_features(model, src)  # [B, K, N, D]
        pred = reconstruct(model, feats, tgt, offsets, visible)  # [B, T, H, W, 3]
    pred = pred.float()
    pixel, norm = masked_patch_errors(pred, tgt, visible, model.config.patch_size)  # [B, T]
    pixel, norm = pixel.mean(1), norm.mean(1)  # [B]
    per_clip = weights.pixel * pixel + weights.patch_norm * norm
    corr = torch.zeros_like(pixel)
    has = torch.zeros_like(pixel, dtype=torch.bool)
    if weights.correspondence > 0:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            last = tgt[:, -1]  # [B, H, W, 3]
            encoded = model.encoder(last)  # [B, N, D]
            later = model.core(encoded, torch.zeros_like(encoded))  # [B, N, D]
        first = feats[:, 0]  # [B, N, D]
        if weights.center_correspondence:  # a batch statistic, like the position term
            first, later = center_cells(first, later)
        corr, has = correspondence_loss(first, later, correspondence[:, -1], weights.temperature)
        per_clip = per_clip + weights.correspondence * corr
    total = per_clip.mean()
    if weights.position > 0:  # a batch statistic: the same for every clip
        total = total + weights.position * position_share(feats)
    return LossOutput(
        total=total,
        pixel=pixel.detach(),
        patch_norm=norm.detach(),
        correspondence=corr.detach(),
        correspondence_count=int(has.sum()),
        prediction=pred.detach(),
    )
