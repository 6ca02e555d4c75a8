"""Training and distillation write a model card into their checkpoints: input size, data
sources, steps (issue 25)."""

from __future__ import annotations

from pathlib import Path

from rvm_ros.checkpoint.card import read_card, trained_size
from rvm_ros.training import train
from rvm_ros.training.card import data_sources, distill_card
from rvm_ros.training.config import DataSection
from rvm_ros.training.distill_config import DistillConfig

from .conftest import small_config


def test_train_checkpoints_record_size_data_and_steps(tmp_path: Path) -> None:
    first_cfg = small_config(tmp_path / "a", "steps=1")
    first = train(first_cfg)
    card = read_card(first.checkpoint)
    assert card.input_size == (first_cfg.data.height, first_cfg.data.width)
    assert trained_size(first.checkpoint) == card.input_size
    assert card.source == "rvm-ros train" and card.steps == 1
    assert card.data == data_sources(first_cfg.data) and card.data
    tuned = train(small_config(tmp_path / "b", "steps=2", f"init={first.checkpoint}"))
    again = read_card(tuned.checkpoint)
    assert again.steps == 3  # the start checkpoint's 1 + this run's 2
    assert str(first.checkpoint) in again.notes and "2 steps in this run" in again.notes


def test_data_sources_and_distill_card() -> None:
    data = DataSection(videos=("/x/bikes.mp4",), sample_images=True, procedural=0.5)
    assert data_sources(data) == (
        "video bikes.mp4 (weight 1)",
        "stills scikit-image / scikit-learn / matplotlib sample images under synthetic "
        "motion (weight 1)",
        "procedural scenes (weight 0.5)",
    )
    cfg = DistillConfig(teacher="default", data=data, student_height=64, student_width=96)
    card = distill_card(cfg, 7)
    assert card.input_size == (64, 96) and card.steps == 7
    assert card.source == "rvm-ros distill from default"
    assert distill_card(DistillConfig(data=data), 1).input_size == (data.height, data.width)
