"""Training configuration: frozen dataclasses, read from YAML with ``key=value`` overrides.

The configuration has four sections (``model``, ``data``, ``loss``, ``optim``) and run-level
fields. A YAML file gives any subset of the fields; ``section.field=value`` overrides on the
command line win over the file; unknown keys are errors naming the key. The resolved
configuration is written beside the checkpoints (:meth:`TrainConfig.to_yaml`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from rvm_ros.errors import TooLarge, check_size
from rvm_ros.model import VARIANTS, RVMConfig
from rvm_ros.training.config_base import (
    Need,
    SectionedConfig,
    TrainConfigError,
    load_sectioned,
    need_raiser,
    validate_optim,
    validate_run_fields,
)

__all__ = [
    "DataSection",
    "LossSection",
    "ModelSection",
    "OptimSection",
    "TrainConfig",
    "TrainConfigError",
    "load_config",
]


@dataclass(frozen=True)
class ModelSection:
    """Architecture to train (ignored when ``init`` names a checkpoint).

    Attributes:
        variant: ``custom`` (sizes below) or a named variant (``tiny``, ``mu``, ``Ti``, ``S``...).
        dim: Token width D.
        enc_layers: Encoder blocks.
        enc_heads: Encoder heads.
        core_layers: Recurrent-core blocks.
        core_heads: Core heads.
        dec_dim: Decoder width.
        dec_layers: Decoder blocks.
        dec_heads: Decoder heads.
        mlp_ratio: MLP hidden width as a multiple of the block width.
    """

    variant: str = "custom"
    dim: int = 192
    enc_layers: int = 6
    enc_heads: int = 3
    core_layers: int = 2
    core_heads: int = 3
    dec_dim: int = 128
    dec_layers: int = 2
    dec_heads: int = 4
    mlp_ratio: int = 4

    def rvm_config(self) -> RVMConfig:
        """The :class:`RVMConfig` these sizes describe."""
        if self.variant != "custom":
            if self.variant not in VARIANTS:
                raise TrainConfigError(
                    f"model.variant: unknown {self.variant!r}; use custom or one of "
                    f"{', '.join(VARIANTS)}"
                )
            return RVMConfig.from_variant(self.variant)
        try:
            return RVMConfig(
                dim=self.dim,
                enc_layers=self.enc_layers,
                enc_heads=self.enc_heads,
                enc_mlp=self.mlp_ratio * self.dim,
                core_layers=self.core_layers,
                core_heads=self.core_heads,
                core_mlp=self.mlp_ratio * self.dim,
                dec_dim=self.dec_dim,
                dec_layers=self.dec_layers,
                dec_heads=self.dec_heads,
                dec_mlp=self.mlp_ratio * self.dec_dim,
                variant="custom",
            )
        except ValueError as exc:
            raise TrainConfigError(f"model: {exc}") from None


@dataclass(frozen=True)
class DataSection:
    """What clips are made of and how they are sampled.

    Attributes:
        videos: Video files (OpenCV-readable).
        bags: rosbag2 bags (folders or ``.mcap`` / ``.db3`` files).
        bag_topics: Image topics to read from the bags (empty: every image topic).
        images: Still images or folders of them, put under synthetic camera motion.
        sample_images: Add the still images shipped with scikit-image / scikit-learn /
            matplotlib (found without network access).
        procedural: Relative weight of procedurally generated scenes.
        video_weight: Relative weight of clips cut from videos and bags.
        still_weight: Relative weight of still-image scenes.
        height: Clip height in pixels (multiple of the patch size).
        width: Clip width in pixels.
        source_frames: K, unmasked source frames per clip.
        target_frames: Target frames per clip.
        min_offset: Smallest target offset after the last source frame (frames).
        max_offset: Largest target offset (< 64, the delta embedder's size).
        frame_stride: Largest temporal stride when cutting video clips (1: consecutive).
        min_scale: Smallest crop side as a fraction of the shorter frame side.
        max_scale: Largest crop side fraction.
        hflip: Probability of a horizontal flip.
        max_speed: Largest synthetic camera speed in pixels per frame (at clip resolution).
        max_rotation: Largest synthetic rotation speed in degrees per frame.
        max_zoom: Largest synthetic zoom rate per frame (fraction).
        max_objects: Largest number of moving pasted objects in a synthetic scene.
        object_speed: Largest pasted-object speed in pixels per frame.
        scene_cut: Probability that the targets come from another scene (copying is wrong).
        keep_ratio: Fraction of target patches kept visible (``int(N * keep_ratio)``).
        workers: Loader worker processes (0: in the training process).
    """

    videos: tuple[str, ...] = ()
    bags: tuple[str, ...] = ()
    bag_topics: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    sample_images: bool = False
    procedural: float = 0.0
    video_weight: float = 1.0
    still_weight: float = 1.0
    height: int = 128
    width: int = 128
    source_frames: int = 4
    target_frames: int = 4
    min_offset: int = 4
    max_offset: int = 48
    frame_stride: int = 1
    min_scale: float = 0.5
    max_scale: float = 1.0
    hflip: float = 0.5
    max_speed: float = 1.0
    max_rotation: float = 0.1
    max_zoom: float = 0.002
    max_objects: int = 3
    object_speed: float = 1.5
    scene_cut: float = 0.0
    keep_ratio: float = 0.05
    workers: int = 1


@dataclass(frozen=True)
class LossSection:
    """Terms of the objective.

    Attributes:
        pixel: Weight of the paper's term, MSE on the masked patches' pixels.
        patch_norm: Weight of the MSE between per-patch normalised prediction and target
            (each patch's own mean and standard deviation removed: structure, not colour).
        correspondence: Weight of the dense correspondence term (synthetic scenes only):
            cross-entropy of the softmax affinity between the first source frame's and the
            farthest target's features (each one step from the zero state) against the
            exactly known patch correspondence.
        temperature: Softmax temperature of the correspondence term.
        position: Weight of the position regulariser: the share of the source features'
            variance explained by the cell position alone across the batch's clips
            (:func:`rvm_ros.training.objective.position_share`); 0 turns it off.
        center_correspondence: Remove the per-cell mean over the batch's clips from both
            frames' features before the correspondence term (what a model with a feature
            centre publishes, :mod:`rvm_ros.model.center`): the term then trains content
            matching without fighting the position component the state needs.
    """

    pixel: float = 1.0
    patch_norm: float = 0.0
    correspondence: float = 0.0
    temperature: float = 0.1
    position: float = 0.0
    center_correspondence: bool = False


@dataclass(frozen=True)
class OptimSection:
    """AdamW, warm-up and cosine decay.

    Attributes:
        lr: Peak learning rate.
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        warmup_steps: Linear warm-up length (optimiser steps).
        weight_decay: AdamW decay of weight matrices (norms, biases and tokens are exempt).
        beta1: Adam beta1.
        beta2: Adam beta2.
        grad_clip: Global gradient-norm clip (0: off).
    """

    lr: float = 1e-3
    min_lr_ratio: float = 0.02
    warmup_steps: int = 200
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0


@dataclass(frozen=True)
class TrainConfig(SectionedConfig):
    """Everything one training run needs.

    Attributes:
        out_dir: Run folder (checkpoints, resolved config, metrics, loss curve).
        init: ``""`` (from scratch), an official ``.npz`` or a project ``.safetensors``.
        seed: Seed of the initial weights and of every sample (deterministic runs).
        steps: Optimiser steps of the run (the cosine decays to the end).
        batch_size: Clips per optimiser step over all processes.
        grad_accum: Micro-batches per optimiser step (per process).
        precision: ``bf16`` (autocast) or ``fp32``.
        threads: torch intra-op threads (0: leave torch's default).
        checkpoint_every: Save every N steps (and at the end).
        keep_checkpoints: Step checkpoints kept besides ``last``.
        log_every: Metrics line every N steps.
        progress: Show the progress bar.
        model: Architecture section.
        data: Data section.
        loss: Loss section.
        optim: Optimiser section.
    """

    out_dir: str = "train_run"
    init: str = ""
    seed: int = 0
    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    precision: str = "bf16"
    threads: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = True
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)

    def __post_init__(self) -> None:
        _validate(self)


_SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "data": DataSection,
    "loss": LossSection,
    "optim": OptimSection,
}


def _validate(cfg: TrainConfig) -> None:
    need = need_raiser
    _validate_finite(cfg, need)
    validate_run_fields(cfg, need)
    d = cfg.data
    need(d.source_frames >= 1, "data.source_frames", "must be >= 1")
    need(d.target_frames >= 1, "data.target_frames", "must be >= 1")
    need(
        1 <= d.min_offset <= d.max_offset < 64,
        "data.min_offset/max_offset",
        f"need 1 <= min_offset <= max_offset < 64, got {d.min_offset}, {d.max_offset}",
    )
    need(d.height > 0 and d.width > 0, "data.height/width", "must be positive")
    need(
        0 < d.min_scale <= d.max_scale <= 1.0,
        "data.min_scale/max_scale",
        "need 0 < min <= max <= 1",
    )
    need(0.0 < d.keep_ratio < 1.0, "data.keep_ratio", f"must be in (0, 1), got {d.keep_ratio}")
    need(d.frame_stride >= 1, "data.frame_stride", "must be >= 1")
    need(d.workers >= 0, "data.workers", "must be >= 0")
    need(0.0 <= d.scene_cut <= 1.0, "data.scene_cut", "must be in [0, 1]")
    for name in ("procedural", "video_weight", "still_weight"):
        need(getattr(d, name) >= 0, f"data.{name}", "must be >= 0")
    validate_optim(cfg.optim, need)
    loss = cfg.loss
    need(
        min(loss.pixel, loss.patch_norm, loss.correspondence, loss.position) >= 0,
        "loss",
        "weights must be >= 0",
    )
    need(
        loss.pixel + loss.patch_norm > 0,
        "loss.pixel/patch_norm",
        "at least one reconstruction term needs a positive weight",
    )
    need(loss.temperature > 0, "loss.temperature", "must be > 0")
    _validate_ranges(cfg, need)
    _validate_sizes(cfg)


def _validate_finite(cfg: TrainConfig, need: Need) -> None:
    """Every number finite."""
    for section in ("", "data", "loss", "optim", "model"):
        obj = getattr(cfg, section) if section else cfg
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if isinstance(value, float):
                key = f"{section}.{f.name}" if section else f.name
                need(math.isfinite(value), key, f"must be finite, got {value}")


def _validate_ranges(cfg: TrainConfig, need: Need) -> None:
    """The fields whose range the checks in `_validate` leave open."""
    o, d = cfg.optim, cfg.data
    need(0 <= o.beta1 < 1, "optim.beta1", f"must be in [0, 1), got {o.beta1}")
    need(0 <= o.beta2 < 1, "optim.beta2", f"must be in [0, 1), got {o.beta2}")
    need(o.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {o.weight_decay}")
    need(
        cfg.keep_checkpoints >= 1,
        "keep_checkpoints",
        f"must be >= 1 (the step checkpoints a resume falls back on), got {cfg.keep_checkpoints}",
    )
    need(0 <= d.hflip <= 1, "data.hflip", f"must be in [0, 1], got {d.hflip}")
    need(d.max_objects >= 0, "data.max_objects", f"must be >= 0, got {d.max_objects}")
    for name in ("max_speed", "max_rotation", "max_zoom", "object_speed"):
        need(getattr(d, name) >= 0, f"data.{name}", f"must be >= 0, got {getattr(d, name)}")


def _validate_sizes(cfg: TrainConfig) -> None:
    """Bound every size before anything is allocated (`TooLarge`, a usage error)."""
    d = cfg.data
    for key, value, most in (
        ("data.height", d.height, 4096),
        ("data.width", d.width, 4096),
        ("data.source_frames", d.source_frames, 64),
        ("data.target_frames", d.target_frames, 64),
        ("data.max_objects", d.max_objects, 256),
        ("data.workers", d.workers, 256),
        ("batch_size", cfg.batch_size, 1 << 20),
        ("grad_accum", cfg.grad_accum, 1 << 20),
        ("steps", cfg.steps, 1 << 40),
        ("threads", cfg.threads, 4096),
    ):
        try:
            check_size(key, value, most=most)
        except TooLarge as exc:
            raise TrainConfigError(str(exc), cause="too_large") from None
    # One micro-batch: pixels (float32 RGB) and the activations of every block kept for
    # the backward pass (about 12 tensors of tokens x D per block).
    arch = cfg.model.rvm_config()
    frames = d.source_frames + d.target_frames
    tokens = (d.height // arch.patch_size) * (d.width // arch.patch_size) + 1
    blocks = arch.enc_layers + arch.core_layers + arch.dec_layers
    per_clip = frames * (d.height * d.width * 3 * 4 + tokens * arch.dim * blocks * 12 * 4)
    clips = -(-cfg.batch_size // cfg.grad_accum)
    try:
        check_size(
            "batch_size (clips per micro-batch)",
            clips,
            bytes_each=per_clip,
            hint="lower batch_size or the clip size, or raise grad_accum",
        )
    except TooLarge as exc:
        raise TrainConfigError(str(exc), cause="too_large") from None


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()
) -> TrainConfig:
    """Build a :class:`TrainConfig` from a YAML file and ``key=value`` overrides.

    Args:
        path: YAML file (None: defaults only).
        overrides: ``field=value`` or ``section.field=value`` strings (YAML values; lists as
            ``[a, b]`` or ``a,b``), applied in order after the file.

    Returns:
        The validated configuration.

    Raises:
        TrainConfigError: Unreadable file, unknown key, wrong type or invalid value.
    """
    return load_sectioned(TrainConfig, path, overrides, _SECTIONS)
