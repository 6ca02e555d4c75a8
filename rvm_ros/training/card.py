"""The model card a training or distillation run writes into its checkpoints.

The card records the input size the weights were trained at, the data sources, the total
steps (a run started from another checkpoint adds that checkpoint's recorded steps) and
where the weights came from (:mod:`rvm_ros.checkpoint.card`).
"""

from __future__ import annotations

from pathlib import Path

from rvm_ros.checkpoint.card import UNKNOWN_CARD, ModelCard, read_card
from rvm_ros.training.config import DataSection, TrainConfig
from rvm_ros.training.distill_config import DistillConfig

__all__ = ["data_sources", "distill_card", "train_card"]


def data_sources(data: DataSection) -> tuple[str, ...]:
    """One short line per data source of ``data``, with its sampling weight."""
    out = [f"video {Path(v).name} (weight {data.video_weight:g})" for v in data.videos]
    out += [f"bag {Path(b).name} (weight {data.video_weight:g})" for b in data.bags]
    stills = [Path(i).name for i in data.images]
    if data.sample_images:
        stills.append("scikit-image / scikit-learn / matplotlib sample images")
    out += [f"stills {s} under synthetic motion (weight {data.still_weight:g})" for s in stills]
    if data.procedural > 0:
        out.append(f"procedural scenes (weight {data.procedural:g})")
    return tuple(out)


def _start_card(spec: str) -> ModelCard:
    """The card of the checkpoint a run starts from (unknown when none or unreadable)."""
    if not spec:
        return UNKNOWN_CARD
    try:
        return read_card(spec)
    except (OSError, ValueError):
        return UNKNOWN_CARD


def _card(
    size: tuple[int, int], source: str, data: DataSection, step: int, start: str
) -> ModelCard:
    before = _start_card(start)
    steps = step if not start else (before.steps + step if before.steps is not None else None)
    notes = f"{step} steps in this run"
    if start:
        notes += f", from {start} ({before.source or 'no model card'}, {before.size_text()})"
    sources = dict.fromkeys((*before.data, *data_sources(data)))  # in order, once each
    return ModelCard(size, source, tuple(sources), steps, {}, notes)


def train_card(cfg: TrainConfig, step: int) -> ModelCard:
    """The card of a ``rvm-ros train`` checkpoint after ``step`` steps of this run."""
    size = (cfg.data.height, cfg.data.width)
    return _card(size, "rvm-ros train", cfg.data, step, cfg.init)


def distill_card(cfg: DistillConfig, step: int) -> ModelCard:
    """The card of a ``rvm-ros distill`` student after ``step`` steps of this run."""
    size = (cfg.student_height or cfg.data.height, cfg.student_width or cfg.data.width)
    start = cfg.student if Path(cfg.student).suffix in (".safetensors", ".npz") else ""
    return _card(size, f"rvm-ros distill from {cfg.teacher}", cfg.data, step, start)
