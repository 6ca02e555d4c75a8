"""Fixtures of the evaluation tests: the training tests' short synthetic video."""

from __future__ import annotations

from training.conftest import moving_video

__all__ = ["moving_video"]
