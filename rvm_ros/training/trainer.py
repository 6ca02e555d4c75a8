"""The training loop: one process or DDP (torchrun), checkpoints and exact resume.

A run folder holds ``config.yaml`` (the resolved configuration), ``metrics.jsonl`` (one line
per logged step), ``loss.png``, step checkpoints ``step_<n>.safetensors`` (project format:
weights + architecture, loadable by every command) each with ``step_<n>.state.pt``
(optimiser, scheduler, RNG states, step and data position), and ``last.*`` (the newest).
Starting a run in a folder that has ``last.state.pt`` resumes it exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import torch
from torch import nn

from rvm_ros.checkpoint.card import ModelCard
from rvm_ros.fsutil import OutputError, atomic_write, check_output, file_sha256
from rvm_ros.model import RVM, RVMConfig
from rvm_ros.training.card import train_card
from rvm_ros.training.checkpointing import (
    checkpoint_paths,
    prune_step_checkpoints,
    publish_last,
    restore_training_state,
    save_torch_atomic,
)
from rvm_ros.training.config import LossSection, TrainConfig, load_config
from rvm_ros.training.data import Batch, Clip, ClipDataset, StepSampler, make_loader
from rvm_ros.training.distributed import (
    Dist,
    barrier,
    mean_over_ranks,
    setup_distributed,
    wrap_ddp,
)
from rvm_ros.training.errors import TrainError
from rvm_ros.training.loop_support import next_batch, optimizer_step
from rvm_ros.training.objective import compute_loss
from rvm_ros.training.optim import make_optimizer, make_scheduler
from rvm_ros.training.plots import plot_loss_curve_safely
from rvm_ros.training.resume import (
    WEIGHTS_SHA256,
    ResumePoint,
    check_same_run,
    comparable,
    find_resume_point,
    has_checkpoints,
    truncate_metrics,
)
from rvm_ros.training.run_log import MetricsLog, progress_bar

__all__ = [
    "LossModule",
    "TrainError",
    "TrainResult",
    "build_model",
    "init_weights",
    "model_config",
    "save_checkpoint",
    "train",
]

if TYPE_CHECKING:
    from tqdm import tqdm

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run left behind.

    Attributes:
        out_dir: Run folder.
        checkpoint: The newest checkpoint (``last.safetensors``).
        step: Optimiser steps done.
        final_loss: Mean total loss of the last logged interval.
        train_seconds: Wall-clock seconds spent training, summed over resumed runs.
    """

    out_dir: Path
    checkpoint: Path
    step: int
    final_loss: float
    train_seconds: float


def init_weights(model: RVM, seed: int) -> None:
    """Deterministic initialisation: Xavier-uniform matrices, zero biases, unit norms,
    N(0, 0.02) tokens (the MAE recipe)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("cls_token", "mask_token")):
                param.copy_(0.02 * torch.randn(param.shape, generator=gen))
            elif param.dim() >= 2:
                fan_out, fan_in = param.shape[0], param.shape[1]
                bound = (6.0 / (fan_in + fan_out)) ** 0.5
                param.copy_((torch.rand(param.shape, generator=gen) * 2 - 1) * bound)
            elif "norm" in name and name.endswith("weight"):
                param.fill_(1.0)
            else:
                param.zero_()


def build_model(cfg: TrainConfig) -> RVM:
    """The model to train: from ``cfg.init`` (decoder added if the file has none) or new."""
    if cfg.init:
        from rvm_ros.checkpoint import load_model

        loaded = load_model(cfg.init)
        if loaded.feature_center is not None:
            from rvm_ros.training.center import without_center

            # The centre is a statistic of the init weights; training makes it stale.
            LOG.warning(
                "init %s has a feature centre; it is dropped for training (fit a new one "
                "on the result with `rvm-ros fit-center`)",
                cfg.init,
            )
            loaded = without_center(loaded)
        if loaded.decoder is None:
            model = RVM(loaded.config, with_decoder=True, model_id=loaded.model_id)
            init_weights(model, cfg.seed)
            missing = model.load_state_dict(loaded.state_dict(), strict=False)
            LOG.info(
                "init %s has no decoder; new decoder (%d tensors)",
                cfg.init,
                len(missing.missing_keys),
            )
        else:
            model = loaded
        return model.train().requires_grad_(True)
    config = cfg.model.rvm_config()
    model = RVM(config, with_decoder=True, model_id=f"{config.variant}-training")
    init_weights(model, cfg.seed)
    return model.train()


def save_checkpoint(
    out_dir: Path,
    model: RVM,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    train_seconds: float,
    keep: int,
    card: ModelCard | None = None,
) -> Path:
    """Write ``step_<n>`` and ``last`` (weights + training state); prune old step files.

    ``card`` (input size, data, steps) goes into the weights' metadata.

    Returns:
        The ``last.safetensors`` path.
    """
    from rvm_ros.checkpoint import save_safetensors

    weights, state_path = checkpoint_paths(out_dir, f"step_{step:07d}")
    bad = [n for n, t in model.state_dict().items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise TrainError(
            f"step {step}: non-finite weights ({', '.join(bad[:3])}); nothing saved "
            "(lower optim.lr)",
            cause="non_finite",
        )
    save_safetensors(model.state_dict(), model.config, weights, card=card)
    state = {
        WEIGHTS_SHA256: file_sha256(weights),  # the pair's agreement, checked on resume
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        # Data randomness needs no state: every clip is drawn from rng([seed, index]).
        "torch_rng": torch.get_rng_state(),
        "train_seconds": train_seconds,
        "config": model.config.to_json(),
    }
    save_torch_atomic(state, state_path)
    last_w = publish_last(out_dir, weights, state_path)
    prune_step_checkpoints(out_dir, keep)
    return last_w


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return Batch(
        source=batch.source.to(device, non_blocking=True),
        target=batch.target.to(device, non_blocking=True),
        offsets=batch.offsets.to(device),
        visible=batch.visible.to(device),
        correspondence=batch.correspondence.to(device),
    )


class LossModule(nn.Module):
    """The model and its objective as one module (what DDP wraps), returning tensors only.

    Args:
        model: The RVM with decoder.
        weights: Loss weights.
        autocast: bfloat16 autocast.
    """

    def __init__(self, model: RVM, weights: LossSection, autocast: bool) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self.autocast = autocast

    def forward(
        self,
        source: torch.Tensor,
        target: torch.Tensor,
        offsets: torch.Tensor,
        visible: torch.Tensor,
        correspondence: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(total, pixel [B], patch_norm [B], correspondence [B], clips with correspondence)``."""
        out = compute_loss(
            self.model,
            source,
            target,
            offsets,
            visible,
            correspondence,
            self.weights,
            self.autocast,
        )
        count = torch.tensor(out.correspondence_count)
        return out.total, out.pixel, out.patch_norm, out.correspondence, count


def _micro_batches(loader: torch.utils.data.DataLoader[Clip]) -> Iterator[Batch]:
    """The loader's batches (its collate function makes one :class:`Batch` of the clips)."""
    yield from loader


def _prepare_folder(cfg: TrainConfig, dist: Dist, force: bool) -> tuple[Path, ResumePoint | None]:
    """Check the run folder (never an input; a run to resume has the same configuration),
    write ``config.yaml``; returns the folder and where to resume (None: from the start)."""
    # The run folder may already exist (resuming); it must never be, hold or lie inside an
    # input (a video, bag, image folder or the init checkpoint).
    inputs = [*cfg.data.videos, *cfg.data.bags, *cfg.data.images]
    if cfg.init:
        inputs.append(cfg.init)
    out_dir = check_output(cfg.out_dir, inputs, force=True, what="out_dir")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not has_checkpoints(out_dir) and not force:
        raise OutputError(
            f"out_dir {out_dir} exists and holds no run to resume; pass --force to start a "
            "run in it (its config.yaml and metrics.jsonl are replaced) or choose a new folder",
            cause="output_exists",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / "config.yaml"
    point = find_resume_point(out_dir)
    if point is not None and config_path.is_file():
        saved = comparable(load_config(config_path).to_dict())
        done = point.step
        check_same_run(
            config_path, saved, comparable(cfg.to_dict()), lambda: done, cfg.optim.warmup_steps
        )
    barrier(dist)  # every rank has checked the folder before the first one writes to it
    if dist.main:
        atomic_write(config_path, lambda tmp: tmp.write_text(cfg.to_yaml()))
    return out_dir, point


def _restore(
    point: ResumePoint | None,
    out_dir: Path,
    dist: Dist,
    model: RVM,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, float]:
    """``(start step, train seconds so far)``: the resume point's state loaded, or a fresh
    start (the metrics of the run before it dropped)."""
    metrics_path = out_dir / "metrics.jsonl"
    if point is None:
        if dist.main and metrics_path.exists():
            metrics_path.unlink()
        return 0, 0.0
    restore_training_state(point, model, optimizer, scheduler)
    start, train_seconds = int(point.state["step"]), float(point.state["train_seconds"])
    if dist.main:
        truncate_metrics(metrics_path, start)
    LOG.info("resuming %s at step %d", out_dir, start)
    return start, train_seconds


@dataclass
class _Run:
    """A training run's parts, set up and ready for :func:`_loop`."""

    cfg: TrainConfig
    dist: Dist
    out_dir: Path
    model: RVM
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    start: int
    end: int
    train_seconds: float


def train(
    cfg: TrainConfig,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    stop_at: int | None = None,
    force: bool = False,
) -> TrainResult:
    """Run (or resume) the training described by ``cfg``.

    Args:
        cfg: The configuration.
        on_step: Called after every optimiser step with ``(step, metrics)`` (tests).
        stop_at: Stop after this many steps in total (without changing the schedule),
            saving a checkpoint there; used to split a run across sessions.
        force: Start a run in an existing folder that holds no run to resume.

    Returns:
        The :class:`TrainResult`.

    Raises:
        TrainError: A resumed folder whose configuration differs, or unusable settings.
    """
    dist = setup_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out_dir, point = _prepare_folder(cfg, dist, force)
    model = build_model(cfg).to(dist.device)
    optimizer = make_optimizer(model, cfg.optim)
    scheduler = make_scheduler(optimizer, cfg.optim, cfg.steps)
    start, train_seconds = _restore(point, out_dir, dist, model, optimizer, scheduler)
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    run = _Run(cfg, dist, out_dir, model, optimizer, scheduler, start, end, train_seconds)
    return _loop(run, on_step)


def _accumulate(run: _Run, ddp: nn.Module, batches: Iterator[Batch], step: int) -> torch.Tensor:
    """Forward and backward of one optimiser step's micro-batches; the sums of
    ``(total, pixel, patch_norm, correspondence)`` over them (float64)."""
    cfg, dist = run.cfg, run.dist
    sums = torch.zeros(4, dtype=torch.float64)
    for micro in range(cfg.grad_accum):
        batch = _to_device(next_batch(batches, step), dist.device)
        sync = micro == cfg.grad_accum - 1 or dist.world == 1
        ctx = contextlib.nullcontext() if sync else ddp.no_sync()  # type: ignore[operator]
        with ctx:
            total, pixel, norm, corr, corr_n = ddp(
                batch.source,
                batch.target,
                batch.offsets,
                batch.visible,
                batch.correspondence,
            )
            (total / cfg.grad_accum).backward()
        sums += torch.tensor(
            [
                float(total.detach()),
                float(pixel.mean()),
                float(norm.mean()),
                float(corr.sum()) / max(1, int(corr_n)),
            ],
            dtype=torch.float64,
        )
    return sums


def _report(run: _Run, step: int, log: MetricsLog, progress: tqdm[NoReturn], lr: float) -> None:
    """A metrics line (rank 0, every ``log_every`` steps and at the end), the progress bar."""
    if run.dist.main and (step % run.cfg.log_every == 0 or step == run.end):
        log.flush(step, run.train_seconds)
        progress.set_postfix(
            loss=f"{log.last['loss']:.4f}",
            lr=f"{lr:.2e}",
            clips_s=f"{log.last['clips_per_s']:.1f}",
        )
    progress.update(1)


def _checkpoint(run: _Run, step: int, last: Path) -> Path:
    """Save (rank 0) every ``checkpoint_every`` steps and at the end; the newest checkpoint."""
    cfg, dist = run.cfg, run.dist
    if not (step % cfg.checkpoint_every == 0 or step == run.end):
        return last
    if dist.main:
        last = save_checkpoint(
            run.out_dir,
            run.model,
            run.optimizer,
            run.scheduler,
            step,
            run.train_seconds,
            cfg.keep_checkpoints,
            train_card(cfg, step),
        )
        plot_loss_curve_safely(run.out_dir / "metrics.jsonl", run.out_dir / "loss.png")
    barrier(dist)
    return last


def _loop(run: _Run, on_step: Callable[[int, dict[str, float]], None] | None) -> TrainResult:
    """The optimiser steps ``run.start + 1 .. run.end``: log, checkpoint."""
    cfg, dist, model = run.cfg, run.dist, run.model
    ddp = wrap_ddp(LossModule(model, cfg.loss, cfg.precision == "bf16"), dist)
    dataset = ClipDataset(cfg.data, cfg.seed, model.config.patch_size)
    sampler = StepSampler(run.start, run.end, cfg.batch_size, cfg.grad_accum, dist.rank, dist.world)
    batches = _micro_batches(make_loader(dataset, sampler, cfg.data.workers))
    progress = progress_bar(dist.main and cfg.progress, run.start, run.end)
    log = MetricsLog(run.out_dir, dist.main, "clips_per_s", cfg.batch_size)
    last_ckpt = checkpoint_paths(run.out_dir, "last")[0]
    step = run.start
    try:
        while step < run.end:
            t0 = time.perf_counter()
            sums = _accumulate(run, ddp, batches, step + 1)
            checked = (step + 1, sums, last_ckpt)
            grad_norm, lr = optimizer_step(
                model.parameters(), run.optimizer, run.scheduler, cfg.optim.grad_clip, checked
            )
            step += 1
            run.train_seconds += time.perf_counter() - t0
            means = mean_over_ranks(sums / cfg.grad_accum, dist)
            values = dict(
                zip(
                    ("loss", "pixel", "patch_norm", "correspondence"),
                    (float(v) for v in means),
                    strict=True,
                )
            )
            values |= {"lr": lr, "grad_norm": grad_norm}
            if on_step is not None:
                on_step(step, values)
            log.add(values)
            _report(run, step, log, progress, lr)
            last_ckpt = _checkpoint(run, step, last_ckpt)
    finally:
        progress.close()
        log.close()
    return TrainResult(run.out_dir, last_ckpt, step, float(log.last["loss"]), run.train_seconds)


def model_config(cfg: TrainConfig) -> RVMConfig:
    """Architecture a configuration trains (reads ``init``'s header when given)."""
    if cfg.init:
        from rvm_ros.checkpoint import read_config

        # A centre in init is dropped for training (build_model).
        return dataclasses.replace(read_config(cfg.init), center_grid=None)
    return cfg.model.rvm_config()
