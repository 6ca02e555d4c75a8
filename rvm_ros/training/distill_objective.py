"""Distillation objective: both models stream the same frames, the student matches the teacher.

Each model runs the streaming protocol of the node (:meth:`rvm_ros.model.RVM.step`): the
frames of a clip in order, each model from its own zero state. The targets are the
teacher's per-frame core outputs (in RVM the core output is also the next state), and
optionally the teacher's encoder outputs. When the models run at different input sizes the
teacher's token grid is mapped cell to cell onto the student's (area average when shrinking,
bilinear when growing; the CLS token maps to the CLS token). A student narrower than the
teacher reaches the teacher's width through a linear adapter trained with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rvm_ros.model import RVM
from rvm_ros.training.distill_config import DistillLossSection


def stream(
    model: RVM, frames: torch.Tensor, with_encoded: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``model`` over a clip from the zero state, as :meth:`RVM.step` does per frame.

    Args:
        model: The model.
        frames: ``[B, L, H, W, 3]`` uint8 or float in [0, 1].
        with_encoded: Also return the encoder outputs.

    Returns:
        ``(features [B, L, N, D], encoded [B, L, N, D] or None)``.
    """
    b, length, height, width, _ = frames.shape
    state = model.init_state(int(b), int(height), int(width))
    feats, encs = [], []
    dtype = model.encoder.cls_token.dtype
    for i in range(int(length)):
        x = frames[:, i]
        x = x.to(dtype) / 255.0 if x.dtype == torch.uint8 else x.to(dtype)  # [B, H, W, 3]
        encoded = model.encoder(x)  # [B, N, D]
        state = model.core(encoded, state.to(encoded.dtype))  # [B, N, D]
        feats.append(state)
        if with_encoded:
            encs.append(encoded)
    features = torch.stack(feats, dim=1)  # [B, L, N, D]
    return features, (torch.stack(encs, dim=1) if with_encoded else None)


def map_grid(tokens: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """Map tokens of an ``src`` grid onto a ``dst`` grid cell to cell.

    Args:
        tokens: ``[..., 1 + h*w, D]`` (CLS first, row-major grid).
        src: Source grid ``(h, w)``.
        dst: Destination grid.

    Returns:
        ``[..., 1 + h'*w', D]``: CLS unchanged, each destination cell the average (shrinking)
        or bilinear interpolation (growing) of the source cells covering the same image area.
    """
    if src == dst:
        return tokens
    lead = tokens.shape[:-2]
    d = tokens.shape[-1]
    flat = tokens.reshape(-1, tokens.shape[-2], d)  # [M, 1+hw, D]
    cls, grid = flat[:, :1], flat[:, 1:]
    grid = grid.transpose(1, 2).reshape(-1, d, src[0], src[1])  # [M, D, h, w]
    if dst[0] <= src[0] and dst[1] <= src[1]:
        grid = F.adaptive_avg_pool2d(grid, dst)
    else:
        grid = F.interpolate(grid, size=dst, mode="bilinear", align_corners=False)
    grid = grid.reshape(-1, d, dst[0] * dst[1]).transpose(1, 2)  # [M, h'w', D]
    return torch.cat([cls, grid], dim=1).reshape(*lead, 1 + dst[0] * dst[1], d)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, L, H, W, 3]`` uint8 -> float in [0, 1] at ``size`` (antialiased bilinear)."""
    b, length, height, width, _ = frames.shape
    x = frames.float() / 255.0
    if (int(height), int(width)) == size:
        return x
    x = x.reshape(-1, int(height), int(width), 3).permute(0, 3, 1, 2)  # [BL, 3, H, W]
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).permute(0, 2, 3, 1).reshape(int(b), int(length), *size, 3)


def _terms(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip ``(1 - cos mean, normalised MSE)`` of ``[B, L, N, D]`` tensors."""
    pred, target = pred.float(), target.float()
    cos = F.cosine_similarity(pred, target, dim=-1).flatten(1).mean(1)  # [B]
    err = (pred - target).pow(2).flatten(1).mean(1)
    scale = target.pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 1.0 - cos, err / scale


class DistillModule(nn.Module):
    """The student, its adapter and the objective as one module (what DDP wraps).

    Args:
        student: The student RVM (trained).
        teacher_dim: Width of the teacher's features.
        weights: Loss weights.
        autocast: bfloat16 autocast of the student.
    """

    def __init__(
        self, student: RVM, teacher_dim: int, weights: DistillLossSection, autocast: bool
    ) -> None:
        super().__init__()
        self.student = student
        dim = student.config.dim
        self.adapter: nn.Linear | None = nn.Linear(dim, teacher_dim) if dim != teacher_dim else None
        self.weights = weights
        self.autocast = autocast

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Student features in the teacher's width (the adapter, or unchanged)."""
        return features if self.adapter is None else self.adapter(features)

    def forward(
        self, frames: torch.Tensor, target: torch.Tensor, target_encoded: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss of one batch.

        Args:
            frames: Student frames ``[B, L, H, W, 3]`` float in [0, 1].
            target: Teacher features on the student's grid ``[B, L, N, Dt]``.
            target_encoded: Teacher encoder outputs likewise, or an empty tensor.

        Returns:
            ``(total, 1 - cos [B], normalised MSE [B], encoder term [B], mean cosine [B])``.
        """
        w = self.weights
        skip = w.skip_frames
        use_enc = w.encoder > 0 and target_encoded.numel() > 0
        device_type = frames.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.autocast):
            feats, encoded = stream(self.student, frames, use_enc)
            pred = self.project(feats[:, skip:])
        cos_loss, mse = _terms(pred, target[:, skip:])
        per_clip = w.cosine * cos_loss + w.mse * mse
        enc_term = torch.zeros_like(cos_loss)
        if use_enc and encoded is not None:
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.autocast):
                pred_enc = self.project(encoded[:, skip:])
            enc_cos, enc_mse = _terms(pred_enc, target_encoded[:, skip:])
            enc_term = w.cosine * enc_cos + w.mse * enc_mse
            per_clip = per_clip + w.encoder * enc_term
        return per_clip.mean(), cos_loss, mse, enc_term, 1.0 - cos_loss.detach()


def _first(n_student: int, n_teacher: int) -> list[int]:
    """Teacher block index for each student block: the teacher's first blocks, in order.

    Measured against evenly spaced and last blocks (docs/TRAINING.md, "Distillation"):
    the truncated stack starts closest to the teacher (a student's blocks beyond the
    teacher's depth map to no block and keep their initialisation).
    """
    return list(range(n_student)) if n_teacher else []


def init_from_teacher(student: RVM, teacher: RVM) -> list[str]:
    """Copy the teacher's tensors into a student of the same width, where shapes match.

    Patch embedding, CLS token, norms, the core's gates, the teacher's first encoder and
    core blocks (as many as the student has) and the decoder are copied.

    Returns:
        Names of the student tensors copied (empty when the widths differ).
    """
    if student.config.dim != teacher.config.dim:
        return []
    s_cfg, t_cfg = student.config, teacher.config
    enc_map = dict(enumerate(_first(s_cfg.enc_layers, t_cfg.enc_layers)))
    core_map = dict(enumerate(_first(s_cfg.core_layers, t_cfg.core_layers)))
    source = teacher.state_dict()
    copied = []
    with torch.no_grad():
        for name, param in student.state_dict().items():
            key = _teacher_key(name, enc_map, core_map)
            if key in source and source[key].shape == param.shape:
                param.copy_(source[key])
                copied.append(name)
    return copied


def _teacher_key(name: str, enc_map: dict[int, int], core_map: dict[int, int]) -> str:
    parts = name.split(".")
    if name.startswith("encoder.layers."):
        parts[2] = str(enc_map[int(parts[2])])
    elif name.startswith("core.transformer.blocks."):
        parts[3] = str(core_map[int(parts[3])])
    return ".".join(parts)
