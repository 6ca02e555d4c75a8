"""Fitting a planning head (pure torch; one process or ``torchrun``: DDP when initialised)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from rvm_ros.heads.planning import PlanningHead

__all__ = ["FitConfig", "HeadBatch", "fit_head", "predict"]


@dataclass(frozen=True, eq=False)
class HeadBatch:
    """Inputs and targets of many samples (CPU tensors).

    Attributes:
        tokens: ``[S, Ncam, N, C]`` (``[S, W, Ncam, N, C]`` with a window), or None.
        past: ``[S, P, 3]`` past poses in the current ego frame, or None.
        valid: ``[S, Ncam]`` bool, or None.
        target: ``[S, K, 3]`` future poses.
    """

    tokens: torch.Tensor | None
    past: torch.Tensor | None
    valid: torch.Tensor | None
    target: torch.Tensor

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def take(self, idx: torch.Tensor) -> HeadBatch:
        """The samples ``idx``."""

        def pick(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[idx]

        return HeadBatch(pick(self.tokens), pick(self.past), pick(self.valid), self.target[idx])


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings.

    Attributes:
        epochs: Passes over the samples.
        batch: Samples per step (per process).
        lr: Peak AdamW learning rate (cosine decay, 5 % warm-up).
        weight_decay: AdamW weight decay.
        yaw_weight: Weight of the yaw error (rad) against the position error (m).
        seed: Seed of the initialisation and the sample order.
    """

    epochs: int = 30
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    yaw_weight: float = 5.0
    seed: int = 0


def _loss(pred: torch.Tensor, target: torch.Tensor, yaw_weight: float) -> torch.Tensor:
    pos = nn.functional.smooth_l1_loss(pred[..., :2], target[..., :2])
    yaw = nn.functional.smooth_l1_loss(pred[..., 2], target[..., 2])
    return pos + yaw_weight * yaw


def _forward(model: nn.Module, b: HeadBatch) -> torch.Tensor:
    tokens = None if b.tokens is None else b.tokens.float()
    return model(tokens, b.past, b.valid)  # type: ignore[no-any-return]


def fit_head(
    head: PlanningHead,
    data: HeadBatch,
    cfg: FitConfig,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``head`` in place on ``data``; returns the mean loss of each epoch.

    Under ``torchrun`` (``torch.distributed`` initialised) every process takes its share of
    each epoch's batches and gradients are averaged (DistributedDataParallel); all
    processes end with the same weights.
    """
    torch.manual_seed(cfg.seed)
    dist = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if dist else 0
    world = torch.distributed.get_world_size() if dist else 1
    model: nn.Module = head
    if dist:
        model = nn.parallel.DistributedDataParallel(head)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(data)
    steps_per_epoch = max(1, math.ceil(n / (cfg.batch * world)))
    total = cfg.epochs * steps_per_epoch
    warm = max(1, total // 20)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses = []
    head.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)  # same order on every process
        total_loss, count = 0.0, 0
        for s in range(steps_per_epoch):
            lo = (s * world + rank) * cfg.batch
            idx = order[lo : lo + cfg.batch]
            if idx.numel() == 0:
                idx = order[: cfg.batch]  # keep the processes in step
            b = data.take(idx)
            loss = _loss(_forward(model, b), b.target, cfg.yaw_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * idx.numel()
            count += idx.numel()
        losses.append(total_loss / max(1, count))
        if progress is not None:
            progress(epoch, losses[-1])
    head.eval()
    return losses


@torch.no_grad()
def predict(head: PlanningHead, data: HeadBatch, batch: int = 256) -> torch.Tensor:
    """``[S, K, 3]`` predictions of ``head`` on ``data``."""
    head.eval()
    outs = []
    for lo in range(0, len(data), batch):
        b = data.take(torch.arange(lo, min(len(data), lo + batch)))
        outs.append(_forward(head, b))
    return torch.cat(outs) if outs else torch.zeros(0, len(head.config.horizons_s), 3)
