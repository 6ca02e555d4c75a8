"""The teacher's side of distillation: its streamed features as the student's targets, on
the fly or read back from a :class:`~rvm_ros.training.distill_cache.TeacherCache`."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import torch

from rvm_ros.model import RVM
from rvm_ros.training.config import DataSection
from rvm_ros.training.distill_cache import CACHE_DTYPE, TeacherCache
from rvm_ros.training.distill_config import DistillConfig
from rvm_ros.training.distill_objective import map_grid, stream

__all__ = ["TeacherTargets", "stream_data"]


def stream_data(data: DataSection) -> DataSection:
    """The data section the clip dataset gets: one cheap target frame (unused)."""
    return replace(data, target_frames=1, min_offset=1, max_offset=1, keep_ratio=0.5)


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


def _plain_key(key: dict[str, object]) -> dict[str, object]:
    """The key as JSON would give it back (tuples as lists)."""
    plain: dict[str, object] = json.loads(json.dumps(key, default=list))
    return plain
