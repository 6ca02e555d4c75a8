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
from typing import Any, TypeVar, get_type_hints

from rvm_ros.training.config import (
    DataSection,
    ModelSection,
    OptimSection,
    TrainConfigError,
    _coerce,
    _parse_override,
    _plain,
)


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
class DistillConfig:
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

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), the form written to YAML."""
        plain: dict[str, Any] = _plain(dataclasses.asdict(self))
        return plain

    def to_yaml(self) -> str:
        """The configuration as YAML text (round-trips through :func:`load_distill_config`)."""
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False))


_SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "data": DataSection,
    "loss": DistillLossSection,
    "optim": OptimSection,
}

T = TypeVar("T")


def _validate(cfg: DistillConfig) -> None:
    def need(ok: bool, key: str, msg: str) -> None:
        if not ok:
            raise TrainConfigError(f"{key}: {msg}")

    need(bool(cfg.teacher), "teacher", "a teacher checkpoint is required")
    need(bool(cfg.student), "student", "a student variant, YAML or checkpoint is required")
    need(cfg.steps >= 1, "steps", f"must be >= 1, got {cfg.steps}")
    need(cfg.batch_size >= 1, "batch_size", f"must be >= 1, got {cfg.batch_size}")
    need(cfg.grad_accum >= 1, "grad_accum", f"must be >= 1, got {cfg.grad_accum}")
    need(cfg.precision in ("bf16", "fp32"), "precision", f"bf16 or fp32, got {cfg.precision!r}")
    need(cfg.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
    need(cfg.log_every >= 1, "log_every", "must be >= 1")
    need(cfg.threads >= 0, "threads", "must be >= 0")
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
    o = cfg.optim
    need(o.lr > 0, "optim.lr", "must be > 0")
    need(0 <= o.min_lr_ratio <= 1, "optim.min_lr_ratio", "must be in [0, 1]")
    need(o.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
    need(o.grad_clip >= 0, "optim.grad_clip", "must be >= 0")
    loss = cfg.loss
    need(min(loss.cosine, loss.mse, loss.encoder) >= 0, "loss", "weights must be >= 0")
    need(loss.cosine + loss.mse > 0, "loss.cosine/mse", "one feature term needs a weight > 0")
    need(
        0 <= loss.skip_frames < d.source_frames,
        "loss.skip_frames",
        f"must be in [0, data.source_frames={d.source_frames})",
    )


def _build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise TrainConfigError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)}; known: "
            f"{', '.join(sorted(prefix + n for n in names))}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = prefix + name
        if name in _SECTIONS and prefix == "":
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise TrainConfigError(f"{key}: expected a mapping, got {value!r}")
            section = dict(value)
            if name == "data":
                section.setdefault("source_frames", 8)
            kwargs[name] = _build(_SECTIONS[name], section, f"{name}.")
        else:
            kwargs[name] = _coerce(value, hints[name], key)
    return cls(**kwargs)


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise TrainConfigError(f"config file {p} not found")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{p}: invalid YAML ({exc})") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise TrainConfigError(f"{p}: top level must be a mapping")
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in loaded.items()}


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
    data: dict[str, Any] = _read_yaml(path) if path is not None else {}
    for text in overrides:
        keys, value = _parse_override(text)
        if len(keys) == 1:
            if keys[0] in _SECTIONS:
                raise TrainConfigError(f"override {text!r}: give section.field=value")
            data[keys[0]] = value
        elif len(keys) == 2 and keys[0] in _SECTIONS:
            section = data.setdefault(keys[0], {})
            if not isinstance(section, dict):
                raise TrainConfigError(f"{keys[0]}: expected a mapping")
            section[keys[1]] = value
        else:
            raise TrainConfigError(
                f"override {text!r}: unknown key {'.'.join(keys)} (sections: "
                f"{', '.join(_SECTIONS)})"
            )
    return _build(DistillConfig, data, "")


def student_model_section(cfg: DistillConfig) -> ModelSection | None:
    """The student's sizes, or None when ``cfg.student`` names a checkpoint to start from.

    ``custom`` takes the ``model`` section; a registry name becomes ``model.variant``; a
    ``.yaml`` file gives a ``model`` section (or the sizes at its top level).
    """
    spec = cfg.student
    if spec == "custom":
        return cfg.model
    if spec.endswith((".yaml", ".yml")):
        loaded = _read_yaml(spec)
        section = loaded.get("model", loaded)
        if not isinstance(section, Mapping):
            raise TrainConfigError(f"student {spec}: 'model' must be a mapping")
        return _build(ModelSection, section, "model.")
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
