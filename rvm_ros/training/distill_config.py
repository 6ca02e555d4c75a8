"""Distillation configuration: frozen dataclasses, YAML + ``key=value`` overrides.

Same style as :mod:`rvm_ros.training.config` (and the same ``model``, ``data`` and ``optim``
sections); the ``loss`` section holds the distillation terms. The resolved configuration is
written beside the checkpoints.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rvm_ros.training.config import DataSection, ModelSection, OptimSection
from rvm_ros.training.config_base import (
    SectionedConfig,
    TrainConfigError,
    build_section,
    load_sectioned,
    need_raiser,
    read_yaml,
    validate_optim,
    validate_run_fields,
)

__all__ = [
    "DistillConfig",
    "DistillLossSection",
    "load_distill_config",
    "student_model_section",
]


@dataclass(frozen=True)
class DistillLossSection:
    """Terms of the distillation objective (each per streamed frame, every token).

    Attributes:
        cosine: Weight of ``1 - cos`` between student and teacher features per token.
        mse: Weight of the MSE between them, divided by the teacher features' mean square.
        encoder: Weight of the same two terms on the encoders' outputs (before recurrence;
            0: off). In RVM the core's output is the next state, so the feature target is
            also the state target.
        skip_frames: Frames at the start of each stream left out of the loss (both models
            still run them; the first frames from the zero state are the easiest).
    """

    cosine: float = 1.0
    mse: float = 1.0
    encoder: float = 0.0
    skip_frames: int = 0


@dataclass(frozen=True)
class DistillConfig(SectionedConfig):
    """Everything one distillation run needs.

    Attributes:
        out_dir: Run folder (checkpoints, resolved config, metrics, loss curve).
        teacher: Teacher checkpoint (``.safetensors``, ``.npz``, ``default``, ``random:...``).
        student: A variant name of the registry (``student192``, ``tiny``, ...), ``custom``
            (sizes from the ``model`` section), a ``.yaml`` file with a ``model`` section, or
            a checkpoint to start from.
        init_from_teacher: Initialise a new student's matching tensors from the teacher
            (patch embedding, tokens, evenly spaced blocks, norms; same width only).
        student_height: Student input height (0: the teacher's, ``data.height``).
        student_width: Student input width (0: ``data.width``).
        teacher_cache: Folder for the teacher's outputs on disk ("": on the fly).
        cache_clips: With a cache, the clips form a pool of this many, reused in order.
        seed: Seed of the initial weights and of every sample.
        steps: Optimiser steps.
        batch_size: Streams per optimiser step over all processes.
        grad_accum: Micro-batches per optimiser step (per process).
        precision: ``bf16`` (autocast for both models) or ``fp32``.
        threads: torch intra-op threads (0: torch's default).
        checkpoint_every: Save every N steps (and at the end).
        keep_checkpoints: Step checkpoints kept besides ``last``.
        log_every: Metrics line every N steps.
        progress: Show the progress bar.
        model: Student sizes when ``student`` is ``custom``.
        data: Data (``data.source_frames`` is the streamed length; targets are unused).
        loss: Distillation terms.
        optim: Optimiser.
    """

    out_dir: str = "distill_run"
    teacher: str = "default"
    student: str = "student192"
    init_from_teacher: bool = True
    student_height: int = 0
    student_width: int = 0
    teacher_cache: str = ""
    cache_clips: int = 0
    seed: int = 0
    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    precision: str = "bf16"
    threads: int = 0
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = True
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=lambda: DataSection(source_frames=8))
    loss: DistillLossSection = field(default_factory=DistillLossSection)
    optim: OptimSection = field(default_factory=OptimSection)

    def __post_init__(self) -> None:
        _validate(self)

    def student_size(self) -> tuple[int, int]:
        """Student input ``(height, width)``."""
        return (
            self.student_height or self.data.height,
            self.student_width or self.data.width,
        )


_SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "data": DataSection,
    "loss": DistillLossSection,
    "optim": OptimSection,
}
# A data section given in the file or overrides starts from the distillation default.
_SECTION_DEFAULTS = {"data": {"source_frames": 8}}


def _validate(cfg: DistillConfig) -> None:
    need = need_raiser
    need(bool(cfg.teacher), "teacher", "a teacher checkpoint is required")
    need(bool(cfg.student), "student", "a student variant, YAML or checkpoint is required")
    validate_run_fields(cfg, need)
    need(cfg.student_height >= 0 and cfg.student_width >= 0, "student_height/width", ">= 0")
    need(cfg.cache_clips >= 0, "cache_clips", "must be >= 0")
    need(
        not cfg.teacher_cache or cfg.cache_clips > 0,
        "cache_clips",
        "a teacher_cache needs a pool of clips (cache_clips > 0); fresh clips never repeat",
    )
    d = cfg.data
    need(d.source_frames >= 1, "data.source_frames", "must be >= 1 (the streamed length)")
    need(d.height > 0 and d.width > 0, "data.height/width", "must be positive")
    need(0 < d.min_scale <= d.max_scale <= 1.0, "data.min_scale/max_scale", "0 < min <= max <= 1")
    need(d.frame_stride >= 1, "data.frame_stride", "must be >= 1")
    need(d.workers >= 0, "data.workers", "must be >= 0")
    for name in ("procedural", "video_weight", "still_weight"):
        need(getattr(d, name) >= 0, f"data.{name}", "must be >= 0")
    validate_optim(cfg.optim, need)
    loss = cfg.loss
    need(min(loss.cosine, loss.mse, loss.encoder) >= 0, "loss", "weights must be >= 0")
    need(loss.cosine + loss.mse > 0, "loss.cosine/mse", "one feature term needs a weight > 0")
    need(
        0 <= loss.skip_frames < d.source_frames,
        "loss.skip_frames",
        f"must be in [0, data.source_frames={d.source_frames})",
    )


def load_distill_config(
    path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()
) -> DistillConfig:
    """Build a :class:`DistillConfig` from a YAML file and ``key=value`` overrides.

    Args:
        path: YAML file (None: defaults only).
        overrides: ``field=value`` or ``section.field=value`` strings, applied in order.

    Returns:
        The validated configuration.

    Raises:
        TrainConfigError: Unreadable file, unknown key, wrong type or invalid value.
    """
    return load_sectioned(DistillConfig, path, overrides, _SECTIONS, _SECTION_DEFAULTS)


def student_model_section(cfg: DistillConfig) -> ModelSection | None:
    """The student's sizes, or None when ``cfg.student`` names a checkpoint to start from.

    ``custom`` takes the ``model`` section; a registry name becomes ``model.variant``; a
    ``.yaml`` file gives a ``model`` section (or the sizes at its top level).
    """
    spec = cfg.student
    if spec == "custom":
        return cfg.model
    if spec.endswith((".yaml", ".yml")):
        loaded = read_yaml(spec)
        section = loaded.get("model", loaded)
        if not isinstance(section, Mapping):
            raise TrainConfigError(f"student {spec}: 'model' must be a mapping")
        return build_section(ModelSection, section, "model.")
    from rvm_ros.model import VARIANTS

    if spec in VARIANTS:
        return dataclasses.replace(cfg.model, variant=spec)
    is_checkpoint = spec.startswith(("random:", "builtin:")) or spec == "default"
    if not is_checkpoint and not Path(spec).is_file():
        raise TrainConfigError(
            f"student: {spec!r} is no variant ({', '.join(VARIANTS)}, custom), .yaml file or "
            "checkpoint"
        )
    return None
