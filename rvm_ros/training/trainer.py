"""The training loop: one process or DDP (torchrun), checkpoints and exact resume.

A run folder holds ``config.yaml`` (the resolved configuration), ``metrics.jsonl`` (one line
per logged step), ``loss.png``, step checkpoints ``step_<n>.safetensors`` (project format:
weights + architecture, loadable by every command) each with ``step_<n>.state.pt``
(optimiser, scheduler, RNG states, step and data position), and ``last.*`` (the newest).
Starting a run in a folder that has ``last.state.pt`` resumes it exactly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rvm_ros.checkpoint.card import ModelCard
from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import OutputError, check_output, file_sha256
from rvm_ros.model import RVM, RVMConfig
from rvm_ros.training.card import train_card
from rvm_ros.training.config import LossSection, TrainConfig, load_config
from rvm_ros.training.data import Batch, ClipDataset, StepSampler, make_loader
from rvm_ros.training.objective import compute_loss
from rvm_ros.training.optim import make_optimizer, make_scheduler
from rvm_ros.training.resume import (
    WEIGHTS_SHA256,
    ResumePoint,
    find_resume_point,
    has_checkpoints,
    truncate_metrics,
)

LOG = logging.getLogger(__name__)

# Fields that may differ between the runs of one resumed training (they change no number).
_RESUME_FREE = (
    "out_dir",
    "progress",
    "threads",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
)
_RESUME_FREE_DATA = ("workers",)


class TrainError(RvmRosError, RuntimeError):
    """A training run that cannot start or continue (the message says why)."""

    cause = "train"


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


@dataclass(frozen=True)
class _Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    return _Dist(rank, world, local, device)


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


def _comparable(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k not in _RESUME_FREE}
    if isinstance(out.get("data"), dict):
        out["data"] = {k: v for k, v in out["data"].items() if k not in _RESUME_FREE_DATA}
    return out


def _checkpoint_paths(out_dir: Path, tag: str) -> tuple[Path, Path]:
    return out_dir / f"{tag}.safetensors", out_dir / f"{tag}.state.pt"


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch's writer reports a full disk as RuntimeError
            raise OSError(f"cannot write {path}: {str(exc).splitlines()[0]}") from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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

    weights, state_path = _checkpoint_paths(out_dir, f"step_{step:07d}")
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
    _atomic_torch_save(state, state_path)
    last_w, last_s = _checkpoint_paths(out_dir, "last")
    for src, dst in ((weights, last_w), (state_path, last_s)):
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    steps = sorted(out_dir.glob("step_*.safetensors"))
    for old in steps[: max(0, len(steps) - keep)]:
        old.unlink(missing_ok=True)
        old.with_name(old.name.replace(".safetensors", ".state.pt")).unlink(missing_ok=True)
    return last_w


def _load_resume(
    point: ResumePoint,
    model: RVM,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, float]:
    from safetensors.torch import load_file

    state = point.state
    if state["config"] != model.config.to_json():
        raise TrainError(f"{point.weights}: saved architecture differs from the configured one")
    tensors = load_file(str(point.weights))
    model.load_state_dict(tensors, strict=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), float(state["train_seconds"])


def _check_finite(step: int, sums: torch.Tensor, grad_norm: float, last: Path) -> None:
    """Stop at a non-finite loss or gradient, before it reaches the weights."""
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


def _next_batch(batches: Iterator[Batch], step: int) -> Batch:
    """The next batch; a loader worker that stalls past its timeout stops the run."""
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


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return Batch(
        source=batch.source.to(device, non_blocking=True),
        target=batch.target.to(device, non_blocking=True),
        offsets=batch.offsets.to(device),
        visible=batch.visible.to(device),
        correspondence=batch.correspondence.to(device),
    )


class _TensorBoard:
    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


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


def _micro_batches(loader: Any) -> Iterator[Batch]:
    yield from loader


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
    dist = _setup_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
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
        saved, now = _comparable(load_config(config_path).to_dict()), _comparable(cfg.to_dict())
        if saved != now and saved.get("steps") != now.get("steps"):
            # The length may change while the run is still in its warm-up: the schedule so
            # far does not depend on it, so the result equals a fresh run of the new length.
            done = point.step
            if done <= cfg.optim.warmup_steps and done < cfg.steps:
                saved["steps"] = now["steps"]
        if saved != now:
            raise TrainError(
                f"{out_dir} holds a run with another configuration ({config_path}); use a new "
                "out_dir or the same configuration to resume (steps may change only until the "
                "end of the warm-up)"
            )
    if dist.world > 1:  # every rank has checked the folder before the first one writes to it
        torch.distributed.barrier()
    if dist.main:
        tmp = config_path.with_name(".config.yaml.tmp")
        tmp.write_text(cfg.to_yaml())
        os.replace(tmp, config_path)

    model = build_model(cfg).to(dist.device)
    optimizer = make_optimizer(model, cfg.optim)
    scheduler = make_scheduler(optimizer, cfg.optim, cfg.steps)
    start, train_seconds = 0, 0.0
    metrics_path = out_dir / "metrics.jsonl"
    if point is not None:
        start, train_seconds = _load_resume(point, model, optimizer, scheduler)
        if dist.main:
            truncate_metrics(metrics_path, start)
        LOG.info("resuming %s at step %d", out_dir, start)
    elif dist.main and metrics_path.exists():
        metrics_path.unlink()
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)

    autocast = cfg.precision == "bf16"
    ddp: nn.Module = LossModule(model, cfg.loss, autocast)
    if dist.world > 1:
        ddp = nn.parallel.DistributedDataParallel(
            ddp, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    dataset = ClipDataset(cfg.data, cfg.seed, model.config.patch_size)
    sampler = StepSampler(start, end, cfg.batch_size, cfg.grad_accum, dist.rank, dist.world)
    loader = make_loader(dataset, sampler, cfg.data.workers)

    progress: Any = None
    if dist.main and cfg.progress and end > start:
        from tqdm import tqdm

        progress = tqdm(total=end, initial=start, unit="step", dynamic_ncols=True)
    board = _TensorBoard(out_dir, dist.main)
    window: dict[str, float] = {}
    window_n = 0
    window_start = time.perf_counter()
    last_loss = float("nan")
    last_ckpt = _checkpoint_paths(out_dir, "last")[0]
    batches = _micro_batches(loader)
    step = start
    try:
        while step < end:
            t0 = time.perf_counter()
            sums = torch.zeros(4, dtype=torch.float64)
            for micro in range(cfg.grad_accum):
                batch = _to_device(_next_batch(batches, step + 1), dist.device)
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
            grad_norm = float("nan")
            if cfg.optim.grad_clip > 0:
                grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip))
            _check_finite(step + 1, sums, grad_norm if cfg.optim.grad_clip > 0 else 0.0, last_ckpt)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_seconds += time.perf_counter() - t0
            means = sums / cfg.grad_accum
            if dist.world > 1:
                torch.distributed.all_reduce(means)  # gloo/nccl on float64 CPU tensors (gloo)
                means /= dist.world
            values = {
                "loss": float(means[0]),
                "pixel": float(means[1]),
                "patch_norm": float(means[2]),
                "correspondence": float(means[3]),
                "lr": float(lr),
                "grad_norm": grad_norm,
            }
            if on_step is not None:
                on_step(step, values)
            for key, value in values.items():
                window[key] = window.get(key, 0.0) + value
            window_n += 1
            if dist.main and (step % cfg.log_every == 0 or step == end):
                elapsed = time.perf_counter() - window_start
                record: dict[str, Any] = {"step": step}
                record.update({k: v / window_n for k, v in window.items()})
                record["clips_per_s"] = window_n * cfg.batch_size / max(elapsed, 1e-9)
                record["train_seconds"] = train_seconds
                with metrics_path.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
                board.log(record)
                last_loss = record["loss"]
                if progress is not None:
                    progress.set_postfix(
                        loss=f"{record['loss']:.4f}",
                        lr=f"{lr:.2e}",
                        clips_s=f"{record['clips_per_s']:.1f}",
                    )
                window, window_n, window_start = {}, 0, time.perf_counter()
            if progress is not None:
                progress.update(1)
            if step % cfg.checkpoint_every == 0 or step == end:
                if dist.main:
                    last_ckpt = save_checkpoint(
                        out_dir,
                        model,
                        optimizer,
                        scheduler,
                        step,
                        train_seconds,
                        cfg.keep_checkpoints,
                        train_card(cfg, step),
                    )
                    _plot(metrics_path, out_dir / "loss.png")
                if dist.world > 1:
                    torch.distributed.barrier()
    finally:
        if progress is not None:
            progress.close()
        board.close()
    return TrainResult(out_dir, last_ckpt, step, last_loss, train_seconds)


def _plot(metrics: Path, png: Path) -> None:
    from rvm_ros.training.plots import plot_loss_curve

    try:
        plot_loss_curve(metrics, png)
    except (OSError, ValueError) as exc:  # a missing plot never stops training
        LOG.warning("loss curve not written: %s", exc)


def model_config(cfg: TrainConfig) -> RVMConfig:
    """Architecture a configuration trains (reads ``init``'s header when given)."""
    if cfg.init:
        from rvm_ros.checkpoint import read_config

        return read_config(cfg.init)
    return cfg.model.rvm_config()
