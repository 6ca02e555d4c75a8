"""The per-step pieces the training and distillation loops share: the next batch, the
finiteness guard and the optimiser step."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from rvm_ros.training.errors import TrainError

__all__ = ["check_finite", "next_batch", "optimizer_step"]

B = TypeVar("B")


def next_batch(batches: Iterator[B], step: int) -> B:
    """The next batch; a loader worker that stalls past its timeout stops the run.

    Raises:
        TrainError: The loader timed out (cause ``stalled``).
    """
    try:
        return next(batches)
    except RuntimeError as exc:
        if "timed out" not in str(exc):
            raise
        raise TrainError(
            f"step {step}: the data loader stalled ({str(exc).splitlines()[0]}); "
            "check the data sources (a hung video or bag read) or set data.workers=0",
            cause="stalled",
        ) from None


def check_finite(step: int, sums: torch.Tensor, grad_norm: float, last: Path) -> None:
    """Stop at a non-finite loss or gradient, before it reaches the weights.

    Args:
        step: The step being taken (for the message).
        sums: The loss terms of the step (the first is the total).
        grad_norm: The gradient norm (0 when not measured).
        last: The newest checkpoint (named in the message when it exists).

    Raises:
        TrainError: A non-finite value (cause ``non_finite``).
    """
    loss_ok = bool(torch.isfinite(sums).all())
    if loss_ok and math.isfinite(grad_norm):
        return
    what = f"gradient norm {grad_norm}" if loss_ok else f"loss {float(sums[0])}"
    keep = f"; the last good checkpoint is {last}" if last.is_file() else ""
    raise TrainError(
        f"step {step}: non-finite {what}; stopped without saving{keep} "
        "(lower optim.lr, check the data)",
        cause="non_finite",
    )


def optimizer_step(
    parameters: Iterable[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    grad_clip: float,
    checked: tuple[int, torch.Tensor, Path],
) -> tuple[float, float]:
    """Clip, check, step the optimiser and the schedule; ``(grad norm, learning rate used)``.

    ``checked`` is ``(step, the step's loss terms, the last checkpoint)``: a non-finite loss
    or gradient stops the run before it reaches the weights (:func:`check_finite`). The
    gradient norm is NaN when ``grad_clip`` is 0 (not measured).
    """
    step, sums, last = checked
    grad_norm = float("nan")
    if grad_clip > 0:
        grad_norm = float(nn.utils.clip_grad_norm_(parameters, grad_clip))
    check_finite(step, sums, grad_norm if grad_clip > 0 else 0.0, last)
    lr = float(optimizer.param_groups[0]["lr"])
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, lr
