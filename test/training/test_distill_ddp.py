"""Distillation under DDP: two gloo processes on this CPU reproduce one process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rvm_ros.training.distill import distill

from .ddp_harness import (
    assert_close_weights,
    assert_same_losses,
    need_gloo,
    run_ranks,
    single_losses,
)
from .test_distill import tiny_config

STEPS = 3
EXTRA = (f"steps={STEPS}", "checkpoint_every=100")


def _job(out: Path, on_step: Callable[[int, dict[str, float]], None]) -> None:
    distill(tiny_config(out, *EXTRA), on_step=on_step)


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    need_gloo()
    single = single_losses(_job, tmp_path / "single")
    # Every rank logs the all-reduced mean loss of the global batch (2 streams per rank).
    assert_same_losses(run_ranks(_job, tmp_path / "ddp"), single, STEPS)
    # Attention key biases are left out (true gradient zero: Adam amplifies rounding noise),
    # and so is the decoder (copied from the teacher, not trained).
    assert_close_weights(
        tmp_path / "single" / "last.safetensors",
        tmp_path / "ddp" / "last.safetensors",
        skip=lambda k: k.endswith("key.bias") or k.startswith("decoder."),
        at_least=20,
    )
