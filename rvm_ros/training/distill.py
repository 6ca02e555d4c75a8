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
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rvm_ros.checkpoint.card import ModelCard
from rvm_ros.fsutil import check_output, file_sha256
from rvm_ros.model import RVM
from rvm_ros.training.card import distill_card
from rvm_ros.training.config import DataSection
from rvm_ros.training.data import ClipDataset, StepSampler, make_loader
from rvm_ros.training.distill_cache import CACHE_DTYPE, TeacherCache
from rvm_ros.training.distill_config import (
    DistillConfig,
    load_distill_config,
    student_model_section,
)
from rvm_ros.training.distill_objective import (
    DistillModule,
    init_from_teacher,
    map_grid,
    resize_frames,
    stream,
)
from rvm_ros.training.optim import make_optimizer, make_scheduler
from rvm_ros.training.resume import (
    WEIGHTS_SHA256,
    find_resume_point,
    has_checkpoints,
    truncate_metrics,
)
from rvm_ros.training.trainer import (
    TrainError,
    _atomic_torch_save,
    _check_finite,
    _checkpoint_paths,
    _comparable,
    _Dist,
    _plot,
    _setup_distributed,
    _TensorBoard,
    init_weights,
)

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
    """

    out_dir: Path
    checkpoint: Path
    step: int
    final_loss: float
    final_cosine: float
    train_seconds: float


def stream_data(data: DataSection) -> DataSection:
    """The data section the clip dataset gets: one cheap target frame (unused)."""
    return replace(data, target_frames=1, min_offset=1, max_offset=1, keep_ratio=0.5)


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


class TeacherTargets:
    """The teacher's targets for a batch: on the fly or through a :class:`TeacherCache`.

    Args:
        teacher: Frozen teacher.
        cfg: The run configuration.
        student_grid: Student token grid.
    """

    def __init__(self, teacher: RVM, cfg: DistillConfig, student_grid: tuple[int, int]) -> None:
        self.teacher = teacher
        self.autocast = cfg.precision == "bf16"
        self.with_encoded = cfg.loss.encoder > 0
        self.teacher_grid = teacher.config.grid(cfg.data.height, cfg.data.width)
        self.student_grid = student_grid
        self.seconds = 0.0
        self.cache: TeacherCache | None = None
        if cfg.teacher_cache:
            key = {
                "teacher": teacher.model_id,
                "data": stream_data(cfg.data).__dict__ | {"workers": 0},
                "seed": cfg.seed,
                "student_grid": list(student_grid),
                "precision": cfg.precision,
                "encoded": self.with_encoded,
                "pool": cfg.cache_clips,
            }
            self.cache = TeacherCache(cfg.teacher_cache, _plain_key(key))

    @torch.no_grad()
    def compute(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher ``(features, encoded or empty)`` on the student grid, float32."""
        t0 = time.perf_counter()
        with torch.autocast(frames.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            feats, enc = stream(self.teacher, frames, self.with_encoded)
        feats = map_grid(feats.float(), self.teacher_grid, self.student_grid)
        encoded = (
            map_grid(enc.float(), self.teacher_grid, self.student_grid)
            if enc is not None
            else torch.empty(0)
        )
        self.seconds += time.perf_counter() - t0
        return feats, encoded

    def __call__(
        self, frames: torch.Tensor, indices: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets of a batch of clips (``indices``: their pool indices when cached)."""
        if self.cache is None:
            return self.compute(frames)
        stored = [self.cache.get(i) for i in indices]
        if any(s is None for s in stored):
            feats, enc = self.compute(frames)
            for j, i in enumerate(indices):
                item = {"features": feats[j]}
                if enc.numel():
                    item["encoded"] = enc[j]
                self.cache.put(i, item)
                stored[j] = {k: v.to("cpu", CACHE_DTYPE) for k, v in item.items()}
        feats = torch.stack([s["features"] for s in stored if s is not None]).float()
        if not self.with_encoded:
            return feats.to(frames.device), torch.empty(0)
        enc = torch.stack([s["encoded"] for s in stored if s is not None]).float()
        return feats.to(frames.device), enc.to(frames.device)


def _plain_key(key: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(key, default=list))  # type: ignore[no-any-return]


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
    weights, state_path = _checkpoint_paths(out_dir, f"step_{step:07d}")
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
    _atomic_torch_save(state, state_path)
    last_w, last_s = _checkpoint_paths(out_dir, "last")
    for src, dst in ((weights, last_w), (state_path, last_s)):
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    if adapter is not None:
        save_adapter(adapter, out_dir / "last.adapter.safetensors")
    steps = sorted(out_dir.glob("step_*.safetensors"))
    for old in steps[: max(0, len(steps) - keep)]:
        old.unlink(missing_ok=True)
        old.with_name(old.name.replace(".safetensors", ".state.pt")).unlink(missing_ok=True)
    return last_w


def save_adapter(adapter: dict[str, torch.Tensor], path: Path) -> None:
    """Write a student's linear adapter (``weight [Dt, Ds]``, ``bias [Dt]``) atomically."""
    from safetensors.torch import save_file

    from rvm_ros.fsutil import atomic_write

    tensors = {k: v.detach().cpu().float().contiguous() for k, v in adapter.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


def _load_resume(
    out_dir: Path,
    module: DistillModule,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, float, float]:
    from safetensors.torch import load_file

    point = find_resume_point(out_dir)  # the newest pair whose files agree
    assert point is not None  # the caller saw a checkpoint
    weights, state = point.weights, point.state
    if state["config"] != module.student.config.to_json():
        raise TrainError(f"{weights}: saved architecture differs from the configured one")
    module.student.load_state_dict(load_file(str(weights)), strict=True)
    if module.adapter is not None:
        module.adapter.load_state_dict(state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    teacher_seconds = float(state.get("teacher_seconds", 0.0))
    return int(state["step"]), float(state["train_seconds"]), teacher_seconds


def _check_resume(cfg: DistillConfig, out_dir: Path) -> None:
    config_path = out_dir / "config.yaml"
    if not (has_checkpoints(out_dir) and config_path.is_file()):
        return
    saved = _comparable(load_distill_config(config_path).to_dict())
    now = _comparable(cfg.to_dict())
    for d in (saved, now):
        d.pop("teacher_cache", None)  # where the cache lives changes no number
    if saved != now and saved.get("steps") != now.get("steps"):
        # As for `train`: the length may change while the run is in its warm-up.
        point = find_resume_point(out_dir)
        done = 0 if point is None else point.step
        if done <= cfg.optim.warmup_steps and done < cfg.steps:
            saved["steps"] = now["steps"]
    if saved != now:
        raise TrainError(
            f"{out_dir} holds a run with another configuration ({config_path}); use a new "
            "out_dir or the same configuration to resume (steps may change only until the "
            "end of the warm-up)"
        )


def _prepare_folder(cfg: DistillConfig, dist: _Dist) -> Path:
    inputs = [*cfg.data.videos, *cfg.data.bags, *cfg.data.images]
    for spec in (cfg.teacher, cfg.student):
        if Path(spec).exists():
            inputs.append(spec)
    out_dir = check_output(cfg.out_dir, inputs, force=True, what="out_dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_resume(cfg, out_dir)
    if dist.main:
        config_path = out_dir / "config.yaml"
        tmp = config_path.with_name(".config.yaml.tmp")
        tmp.write_text(cfg.to_yaml())
        os.replace(tmp, config_path)
    return out_dir


class _Logger:
    """Windowed means of the step values, written to ``metrics.jsonl`` and TensorBoard."""

    def __init__(self, out_dir: Path, main: bool, frames_per_step: int) -> None:
        self.path = out_dir / "metrics.jsonl"
        self.main = main
        self.board = _TensorBoard(out_dir, main)
        self.frames_per_step = frames_per_step
        self.window: dict[str, float] = {}
        self.n = 0
        self.start = time.perf_counter()
        self.last: dict[str, Any] = {"loss": float("nan"), "cosine": float("nan")}

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.window[key] = self.window.get(key, 0.0) + value
        self.n += 1

    def flush(self, step: int, train_seconds: float, extra: dict[str, float]) -> None:
        if not self.main or not self.n:
            return
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        record: dict[str, Any] = {"step": step}
        record.update({k: v / self.n for k, v in self.window.items()})
        record["frames_per_s"] = self.n * self.frames_per_step / elapsed
        record["train_seconds"] = train_seconds
        record.update(extra)
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        self.board.log(record)
        self.last = record
        self.window, self.n, self.start = {}, 0, time.perf_counter()


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
    dist = _setup_distributed()
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
    if module.adapter is not None:
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        with torch.no_grad():
            bound = module.adapter.in_features**-0.5
            module.adapter.weight.copy_(
                (torch.rand(module.adapter.weight.shape, generator=gen) * 2 - 1) * bound
            )
            module.adapter.bias.zero_()
    optimizer = make_optimizer(module, cfg.optim)
    scheduler = make_scheduler(optimizer, cfg.optim, cfg.steps)
    start, train_seconds, teacher_seconds = 0, 0.0, 0.0
    metrics_path = out_dir / "metrics.jsonl"
    if has_checkpoints(out_dir):
        start, train_seconds, teacher_seconds = _load_resume(out_dir, module, optimizer, scheduler)
        if dist.main:
            truncate_metrics(metrics_path, start)
        LOG.info("resuming %s at step %d", out_dir, start)
    elif dist.main and metrics_path.exists():
        metrics_path.unlink()
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    return _loop(
        cfg,
        dist,
        out_dir,
        teacher,
        module,
        optimizer,
        scheduler,
        grid,
        size,
        start,
        end,
        (train_seconds, teacher_seconds),
        on_step,
    )


def _indices(sampler: StepSampler, pool: int) -> Iterator[list[int]]:
    for batch in sampler:
        yield [i % pool for i in batch] if pool else batch


class _PoolDataset(torch.utils.data.Dataset[Any]):
    """Clip ``i`` of the run is clip ``i mod pool`` of the underlying dataset."""

    def __init__(self, dataset: ClipDataset, pool: int) -> None:
        self.dataset = dataset
        self.pool = pool

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % self.pool if self.pool else index]


_TERMS = ("loss", "cosine_loss", "mse", "encoder", "cosine")


def _accumulate(
    cfg: DistillConfig,
    dist: _Dist,
    ddp: nn.Module,
    batches: Iterator[Any],
    index_iter: Iterator[list[int]],
    targets: TeacherTargets,
    size: tuple[int, int],
) -> torch.Tensor:
    """Forward and backward of one optimiser step's micro-batches; the terms' means."""
    sums = torch.zeros(len(_TERMS), dtype=torch.float64)
    for micro in range(cfg.grad_accum):
        batch, indices = next(batches), next(index_iter)
        frames = batch.source.to(dist.device)  # [B, L, H, W, 3] uint8
        target, target_enc = targets(frames, indices)
        student_frames = resize_frames(frames, size)
        sync = micro == cfg.grad_accum - 1 or dist.world == 1
        ctx = contextlib.nullcontext() if sync else ddp.no_sync()  # type: ignore[operator]
        with ctx:
            total, cos_l, mse, enc, cos = ddp(student_frames, target, target_enc)
            (total / cfg.grad_accum).backward()
        terms = (total, cos_l, mse, enc, cos)
        sums += torch.tensor([float(t.detach().mean()) for t in terms], dtype=torch.float64)
    return sums / cfg.grad_accum


def _apply(
    cfg: DistillConfig,
    module: DistillModule,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    checked: tuple[int, torch.Tensor, Path],
) -> tuple[float, float]:
    """Clip, step the optimiser and the schedule; ``(grad norm, learning rate used)``.

    ``checked`` is ``(step, the terms' means, the last checkpoint)``: a non-finite loss or
    gradient stops the run before it reaches the weights (:func:`_check_finite`).
    """
    step, sums, last = checked
    grad_norm = float("nan")
    if cfg.optim.grad_clip > 0:
        grad_norm = float(nn.utils.clip_grad_norm_(module.parameters(), cfg.optim.grad_clip))
    _check_finite(step, sums, grad_norm if cfg.optim.grad_clip > 0 else 0.0, last)
    lr = float(optimizer.param_groups[0]["lr"])
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, lr


def _loop(
    cfg: DistillConfig,
    dist: _Dist,
    out_dir: Path,
    teacher: RVM,
    module: DistillModule,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    grid: tuple[int, int],
    size: tuple[int, int],
    start: int,
    end: int,
    seconds: tuple[float, float],
    on_step: Callable[[int, dict[str, float]], None] | None,
) -> DistillResult:
    ddp: nn.Module = module
    if dist.world > 1:
        ddp = nn.parallel.DistributedDataParallel(
            module, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    dataset = ClipDataset(stream_data(cfg.data), cfg.seed, teacher.config.patch_size)
    pool = cfg.cache_clips if cfg.teacher_cache else 0
    sampler = StepSampler(start, end, cfg.batch_size, cfg.grad_accum, dist.rank, dist.world)
    loader = make_loader(_PoolDataset(dataset, pool), sampler, cfg.data.workers)  # type: ignore[arg-type]
    train_seconds = seconds[0]
    targets = TeacherTargets(teacher, cfg, grid)
    targets.seconds = seconds[1]  # the teacher's share, summed over resumed runs
    logger = _Logger(out_dir, dist.main, cfg.batch_size * cfg.data.source_frames)
    progress: Any = None
    if dist.main and cfg.progress and end > start:
        from tqdm import tqdm

        progress = tqdm(total=end, initial=start, unit="step", dynamic_ncols=True)
    last_ckpt = _checkpoint_paths(out_dir, "last")[0]
    batches, index_iter = iter(loader), _indices(sampler, pool)
    step = start
    try:
        while step < end:
            t0 = time.perf_counter()
            means = _accumulate(cfg, dist, ddp, batches, index_iter, targets, size)
            grad_norm, lr = _apply(cfg, module, optimizer, scheduler, (step + 1, means, last_ckpt))
            step += 1
            train_seconds += time.perf_counter() - t0
            if dist.world > 1:
                torch.distributed.all_reduce(means)
                means /= dist.world
            values = dict(zip(_TERMS, (float(v) for v in means), strict=True))
            values |= {"lr": float(lr), "grad_norm": grad_norm}
            if on_step is not None:
                on_step(step, values)
            logger.add(values)
            if step % cfg.log_every == 0 or step == end:
                extra = {"teacher_seconds": targets.seconds}
                if targets.cache is not None:
                    extra |= {
                        "cache_hits": targets.cache.hits,
                        "cache_misses": targets.cache.misses,
                    }
                logger.flush(step, train_seconds, extra)
                if progress is not None:
                    progress.set_postfix(
                        loss=f"{logger.last['loss']:.4f}",
                        cos=f"{logger.last['cosine']:.3f}",
                        fps=f"{logger.last.get('frames_per_s', 0):.1f}",
                    )
            if progress is not None:
                progress.update(1)
            if step % cfg.checkpoint_every == 0 or step == end:
                if dist.main:
                    last_ckpt = save_distill_checkpoint(
                        out_dir,
                        module,
                        optimizer,
                        scheduler,
                        step,
                        train_seconds,
                        cfg.keep_checkpoints,
                        targets.seconds,
                        distill_card(cfg, step),
                    )
                    _plot(out_dir / "metrics.jsonl", out_dir / "loss.png")
                if dist.world > 1:
                    torch.distributed.barrier()
    finally:
        if progress is not None:
            progress.close()
        logger.board.close()
    return DistillResult(
        out_dir,
        last_ckpt,
        step,
        float(logger.last["loss"]),
        float(logger.last["cosine"]),
        train_seconds,
    )
