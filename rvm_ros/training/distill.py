"""The distillation loop: one process or DDP (torchrun), checkpoints and exact resume.

A run folder holds ``config.yaml``, ``metrics.jsonl``, ``loss.png`` and checkpoints
``step_<n>.safetensors`` (the student in the project format, the frozen architecture
inside: every command loads it as it is) with ``step_<n>.state.pt`` (optimiser, scheduler,
RNG, adapter, step), plus ``last.*``; a narrower student's adapter to the teacher's width is
also written as ``last.adapter.safetensors``. Starting again in the same folder resumes
exactly (the next steps' losses are bit-identical to an uninterrupted run).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import torch
from torch import nn

from rvm_ros.checkpoint.card import ModelCard
from rvm_ros.fsutil import atomic_write, check_output, file_sha256
from rvm_ros.model import RVM
from rvm_ros.training.card import distill_card
from rvm_ros.training.checkpointing import (
    checkpoint_paths,
    prune_step_checkpoints,
    publish_last,
    restore_training_state,
    save_torch_atomic,
)
from rvm_ros.training.data import Batch, Clip, ClipDataset, StepSampler, make_loader
from rvm_ros.training.distill_config import (
    DistillConfig,
    load_distill_config,
    student_model_section,
)
from rvm_ros.training.distill_objective import (
    DistillModule,
    init_from_teacher,
    resize_frames,
)
from rvm_ros.training.distill_targets import TeacherTargets, stream_data
from rvm_ros.training.distributed import (
    Dist,
    barrier,
    mean_over_ranks,
    setup_distributed,
    wrap_ddp,
)
from rvm_ros.training.errors import TrainError
from rvm_ros.training.loop_support import optimizer_step
from rvm_ros.training.optim import make_optimizer, make_scheduler
from rvm_ros.training.plots import plot_loss_curve_safely
from rvm_ros.training.resume import (
    WEIGHTS_SHA256,
    check_same_run,
    comparable,
    find_resume_point,
    has_checkpoints,
    truncate_metrics,
)
from rvm_ros.training.run_log import MetricsLog, progress_bar
from rvm_ros.training.trainer import init_weights

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = [
    "DistillResult",
    "TeacherTargets",
    "build_student",
    "distill",
    "save_adapter",
    "save_distill_checkpoint",
    "stream_data",
]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillResult:
    """What a finished (or stopped) run left behind.

    Attributes:
        out_dir: Run folder.
        checkpoint: The newest student checkpoint (``last.safetensors``).
        step: Optimiser steps done.
        final_loss: Mean total loss of the last logged interval.
        final_cosine: Mean student-teacher feature cosine of the last logged interval.
        train_seconds: Wall-clock seconds spent distilling, summed over resumed runs.
        teacher_centred: The teacher publishes centred features (a feature centre); the
            student learnt its state and has none until ``rvm-ros fit-center`` gives it one.
    """

    out_dir: Path
    checkpoint: Path
    step: int
    final_loss: float
    final_cosine: float
    train_seconds: float
    teacher_centred: bool = False


def build_student(cfg: DistillConfig, teacher: RVM) -> RVM:
    """The student: from a checkpoint (``cfg.student``) or new, maybe from the teacher."""
    section = student_model_section(cfg)
    if section is None:
        from rvm_ros.checkpoint import load_model

        model = load_model(cfg.student).train().requires_grad_(True)
        if model.decoder is not None:
            model.decoder.requires_grad_(False)  # not distilled: kept as it is
        return model
    config = section.rvm_config()
    with_decoder = cfg.init_from_teacher and teacher.decoder is not None
    model = RVM(config, with_decoder=with_decoder, model_id=f"{config.variant}-distill")
    init_weights(model, cfg.seed)
    if cfg.init_from_teacher:
        copied = init_from_teacher(model, teacher)
        LOG.info("student: %d tensors from the teacher", len(copied))
    if model.decoder is not None:
        model.decoder.requires_grad_(False)  # the teacher's decoder, not distilled
    return model.train()


def save_distill_checkpoint(
    out_dir: Path,
    module: DistillModule,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    train_seconds: float,
    keep: int,
    teacher_seconds: float = 0.0,
    card: ModelCard | None = None,
) -> Path:
    """Write ``step_<n>`` and ``last`` (student + state + adapter); prune old step files.

    ``card`` (input size, data, steps) goes into the student's metadata.
    """
    from rvm_ros.checkpoint import save_safetensors

    student = module.student
    weights, state_path = checkpoint_paths(out_dir, f"step_{step:07d}")
    save_safetensors(student.state_dict(), student.config, weights, card=card)
    adapter = None if module.adapter is None else module.adapter.state_dict()
    state = {
        WEIGHTS_SHA256: file_sha256(weights),  # the pair's agreement, checked on resume
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "train_seconds": train_seconds,
        "teacher_seconds": teacher_seconds,
        "config": student.config.to_json(),
        "adapter": adapter,
    }
    save_torch_atomic(state, state_path)
    last_w = publish_last(out_dir, weights, state_path)
    if adapter is not None:
        save_adapter(adapter, out_dir / "last.adapter.safetensors")
    prune_step_checkpoints(out_dir, keep)
    return last_w


def save_adapter(adapter: dict[str, torch.Tensor], path: Path) -> None:
    """Write a student's linear adapter (``weight [Dt, Ds]``, ``bias [Dt]``) atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().float().contiguous() for k, v in adapter.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


def _load_resume(
    out_dir: Path,
    module: DistillModule,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, float, float]:
    point = find_resume_point(out_dir)  # the newest pair whose files agree
    assert point is not None  # the caller saw a checkpoint
    state = point.state
    restore_training_state(point, module.student, optimizer, scheduler)
    if module.adapter is not None:
        module.adapter.load_state_dict(state["adapter"])
    teacher_seconds = float(state.get("teacher_seconds", 0.0))
    return int(state["step"]), float(state["train_seconds"]), teacher_seconds


def _check_resume(cfg: DistillConfig, out_dir: Path) -> None:
    config_path = out_dir / "config.yaml"
    if not (has_checkpoints(out_dir) and config_path.is_file()):
        return
    # Where the cache lives changes no number.
    saved = comparable(load_distill_config(config_path).to_dict(), free=("teacher_cache",))
    now = comparable(cfg.to_dict(), free=("teacher_cache",))

    def done() -> int:
        point = find_resume_point(out_dir)
        return 0 if point is None else point.step

    check_same_run(config_path, saved, now, done, cfg.optim.warmup_steps)


def _prepare_folder(cfg: DistillConfig, dist: Dist) -> Path:
    inputs = [*cfg.data.videos, *cfg.data.bags, *cfg.data.images]
    for spec in (cfg.teacher, cfg.student):
        if Path(spec).exists():
            inputs.append(spec)
    out_dir = check_output(cfg.out_dir, inputs, force=True, what="out_dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_resume(cfg, out_dir)
    if dist.main:
        atomic_write(out_dir / "config.yaml", lambda tmp: tmp.write_text(cfg.to_yaml()))
    return out_dir


def distill(
    cfg: DistillConfig,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    stop_at: int | None = None,
) -> DistillResult:
    """Run (or resume) the distillation described by ``cfg``.

    Args:
        cfg: The configuration.
        on_step: Called after every optimiser step with ``(step, metrics)`` (tests).
        stop_at: Stop after this many steps in total (schedule unchanged), checkpointed.

    Returns:
        The :class:`DistillResult`.

    Raises:
        TrainError: A resumed folder whose configuration differs, or unusable settings.
    """
    from rvm_ros.checkpoint import load_model

    student_model_section(cfg)  # an unknown student is refused before anything is written
    dist = setup_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out_dir = _prepare_folder(cfg, dist)
    teacher = load_model(cfg.teacher, device=dist.device)
    try:
        teacher.config.grid(cfg.data.height, cfg.data.width)
    except ValueError as exc:
        raise TrainError(f"teacher input data.height/width: {exc}") from None
    student = build_student(cfg, teacher).to(dist.device)
    size = cfg.student_size()
    try:
        grid = student.config.grid(*size)
    except ValueError as exc:
        raise TrainError(f"student input student_height/width: {exc}") from None
    module = DistillModule(student, teacher.config.dim, cfg.loss, cfg.precision == "bf16")
    module.to(dist.device)
    _init_adapter(module, cfg.seed + 1)
    optimizer = make_optimizer(module, cfg.optim)
    scheduler = make_scheduler(optimizer, cfg.optim, cfg.steps)
    start, train_seconds, teacher_seconds = _restore(out_dir, dist, module, optimizer, scheduler)
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    batches = _batches(cfg, dist, teacher.config.patch_size, start, end)
    targets = TeacherTargets(teacher, cfg, grid)
    targets.seconds = teacher_seconds  # the teacher's share, summed over resumed runs
    run = _Run(cfg, dist, out_dir, module, optimizer, scheduler, targets, size, start, end)
    run.train_seconds = train_seconds
    return _loop(run, batches, on_step)


def _init_adapter(module: DistillModule, seed: int) -> None:
    """Uniform +-1/sqrt(fan-in) weights and zero bias for a narrower student's adapter."""
    if module.adapter is None:
        return
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bound = module.adapter.in_features**-0.5
        module.adapter.weight.copy_(
            (torch.rand(module.adapter.weight.shape, generator=gen) * 2 - 1) * bound
        )
        module.adapter.bias.zero_()


def _restore(
    out_dir: Path,
    dist: Dist,
    module: DistillModule,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, float, float]:
    """``(start step, train seconds, teacher seconds)``: resumed, or a fresh start (the
    metrics of the run before it dropped)."""
    metrics_path = out_dir / "metrics.jsonl"
    if not has_checkpoints(out_dir):
        if dist.main and metrics_path.exists():
            metrics_path.unlink()
        return 0, 0.0, 0.0
    start, train_seconds, teacher_seconds = _load_resume(out_dir, module, optimizer, scheduler)
    if dist.main:
        truncate_metrics(metrics_path, start)
    LOG.info("resuming %s at step %d", out_dir, start)
    return start, train_seconds, teacher_seconds


def _indices(sampler: StepSampler, pool: int) -> Iterator[list[int]]:
    for batch in sampler:
        yield [i % pool for i in batch] if pool else batch


class _PoolDataset(torch.utils.data.Dataset[Clip]):
    """Clip ``i`` of the run is clip ``i mod pool`` of the underlying dataset."""

    def __init__(self, dataset: ClipDataset, pool: int) -> None:
        self.dataset = dataset
        self.pool = pool

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Clip:
        return self.dataset[index % self.pool if self.pool else index]


_TERMS = ("loss", "cosine_loss", "mse", "encoder", "cosine")


@dataclass
class _Run:
    """A distillation run's parts, set up and ready for :func:`_loop`."""

    cfg: DistillConfig
    dist: Dist
    out_dir: Path
    module: DistillModule
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    targets: TeacherTargets
    size: tuple[int, int]
    start: int
    end: int
    train_seconds: float = 0.0


def _accumulate(
    run: _Run, ddp: nn.Module, batches: Iterator[Batch], index_iter: Iterator[list[int]]
) -> torch.Tensor:
    """Forward and backward of one optimiser step's micro-batches; the terms' means."""
    cfg, dist = run.cfg, run.dist
    sums = torch.zeros(len(_TERMS), dtype=torch.float64)
    for micro in range(cfg.grad_accum):
        batch, indices = next(batches), next(index_iter)
        frames = batch.source.to(dist.device)  # [B, L, H, W, 3] uint8
        target, target_enc = run.targets(frames, indices)
        student_frames = resize_frames(frames, run.size)
        sync = micro == cfg.grad_accum - 1 or dist.world == 1
        ctx = contextlib.nullcontext() if sync else ddp.no_sync()  # type: ignore[operator]
        with ctx:
            total, cos_l, mse, enc, cos = ddp(student_frames, target, target_enc)
            (total / cfg.grad_accum).backward()
        terms = (total, cos_l, mse, enc, cos)
        sums += torch.tensor([float(t.detach().mean()) for t in terms], dtype=torch.float64)
    return sums / cfg.grad_accum


def _report(run: _Run, step: int, log: MetricsLog, progress: tqdm[NoReturn]) -> None:
    """A metrics line every ``log_every`` steps and at the end; the progress bar."""
    if step % run.cfg.log_every == 0 or step == run.end:
        targets = run.targets
        extra = {"teacher_seconds": targets.seconds}
        if targets.cache is not None:
            extra |= {"cache_hits": targets.cache.hits, "cache_misses": targets.cache.misses}
        log.flush(step, run.train_seconds, extra)
        progress.set_postfix(
            loss=f"{log.last['loss']:.4f}",
            cos=f"{log.last['cosine']:.3f}",
            fps=f"{log.last.get('frames_per_s', 0):.1f}",
        )
    progress.update(1)


def _checkpoint(run: _Run, step: int, last: Path) -> Path:
    """Save (rank 0) every ``checkpoint_every`` steps and at the end; the newest checkpoint."""
    cfg = run.cfg
    if not (step % cfg.checkpoint_every == 0 or step == run.end):
        return last
    if run.dist.main:
        last = save_distill_checkpoint(
            run.out_dir,
            run.module,
            run.optimizer,
            run.scheduler,
            step,
            run.train_seconds,
            cfg.keep_checkpoints,
            run.targets.seconds,
            distill_card(cfg, step),
        )
        plot_loss_curve_safely(run.out_dir / "metrics.jsonl", run.out_dir / "loss.png")
    barrier(run.dist)
    return last


def _batches(
    cfg: DistillConfig, dist: Dist, patch_size: int, start: int, end: int
) -> tuple[Iterator[Batch], Iterator[list[int]]]:
    """This rank's batches of the steps ``start + 1 .. end`` and, in step, their clips' pool
    indices (the cache keys)."""
    dataset = ClipDataset(stream_data(cfg.data), cfg.seed, patch_size)
    pool = cfg.cache_clips if cfg.teacher_cache else 0
    sampler = StepSampler(start, end, cfg.batch_size, cfg.grad_accum, dist.rank, dist.world)
    loader = make_loader(_PoolDataset(dataset, pool), sampler, cfg.data.workers)  # type: ignore[arg-type]
    batches: Iterator[Batch] = iter(loader)  # collate makes one Batch of the clips
    return batches, _indices(sampler, pool)


def _loop(
    run: _Run,
    data: tuple[Iterator[Batch], Iterator[list[int]]],
    on_step: Callable[[int, dict[str, float]], None] | None,
) -> DistillResult:
    """The optimiser steps ``run.start + 1 .. run.end``: log, checkpoint."""
    cfg, dist, module = run.cfg, run.dist, run.module
    ddp = wrap_ddp(module, dist)
    batches, index_iter = data
    log = MetricsLog(
        run.out_dir, dist.main, "frames_per_s", cfg.batch_size * cfg.data.source_frames
    )
    progress = progress_bar(dist.main and cfg.progress, run.start, run.end)
    last_ckpt = checkpoint_paths(run.out_dir, "last")[0]
    step = run.start
    try:
        while step < run.end:
            t0 = time.perf_counter()
            means = _accumulate(run, ddp, batches, index_iter)
            checked = (step + 1, means, last_ckpt)
            grad_norm, lr = optimizer_step(
                module.parameters(), run.optimizer, run.scheduler, cfg.optim.grad_clip, checked
            )
            step += 1
            run.train_seconds += time.perf_counter() - t0
            mean_over_ranks(means, dist)
            values = dict(zip(_TERMS, (float(v) for v in means), strict=True))
            values |= {"lr": lr, "grad_norm": grad_norm}
            if on_step is not None:
                on_step(step, values)
            log.add(values)
            _report(run, step, log, progress)
            last_ckpt = _checkpoint(run, step, last_ckpt)
    finally:
        progress.close()
        log.close()
    loss, cosine = float(log.last["loss"]), float(log.last["cosine"])
    centred = run.targets.teacher.feature_center is not None
    return DistillResult(run.out_dir, last_ckpt, step, loss, cosine, run.train_seconds, centred)
