"""Teacher vs student on held-out video: the measurements of ``rvm-ros eval-distill``.

Every measurement runs both models on the same frames, each at its own input size and
from its own state; the teacher's token grid is mapped cell to cell onto the student's
(:func:`rvm_ros.training.distill_objective.map_grid`) and a narrower student's features
reach the teacher's width through the adapter trained with it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rvm_ros.model import RVM
from rvm_ros.training.distill_objective import map_grid

if TYPE_CHECKING:
    from rvm_ros.tracking.evaluation.sequence import TrackingSequence


@dataclass(eq=False)
class Pair:
    """Teacher and student as evaluated.

    Attributes:
        teacher: Teacher model (eval mode).
        student: Student model (eval mode).
        adapter: Student-to-teacher width adapter, or None (same width).
        teacher_size: Teacher input ``(H, W)``.
        student_size: Student input ``(H, W)``.
    """

    teacher: RVM
    student: RVM
    adapter: nn.Linear | None
    teacher_size: tuple[int, int]
    student_size: tuple[int, int]

    @property
    def teacher_grid(self) -> tuple[int, int]:
        """Teacher token grid."""
        return self.teacher.config.grid(*self.teacher_size)

    @property
    def student_grid(self) -> tuple[int, int]:
        """Student token grid."""
        return self.student.config.grid(*self.student_size)


def load_adapter(path: str | Path) -> nn.Linear:
    """A student's linear adapter written by ``rvm-ros distill`` (``*.adapter.safetensors``)."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    weight = tensors["weight"]
    adapter = nn.Linear(int(weight.shape[1]), int(weight.shape[0]))
    adapter.load_state_dict(tensors)
    return adapter.eval().requires_grad_(False)


def adapter_beside(checkpoint: str | Path) -> Path | None:
    """``<stem>.adapter.safetensors`` beside a student checkpoint, if there is one."""
    p = Path(checkpoint)
    candidate = p.with_name(f"{p.stem}.adapter.safetensors")
    return candidate if candidate.is_file() else None


def ping_pong(frames: np.ndarray, count: int) -> np.ndarray:
    """``count`` frames of the video played forward, backward, forward... (no jump)."""
    if len(frames) < 2:
        return np.repeat(frames, count, axis=0)[:count]
    cycle = np.concatenate([np.arange(len(frames)), np.arange(len(frames) - 2, 0, -1)])
    return frames[np.resize(cycle, count)]


@torch.no_grad()
def stream_features(model: RVM, frames: np.ndarray) -> torch.Tensor:
    """Recurrent states of every frame streamed from the zero state: ``[F, N, D]`` float32.

    The state is what distillation trains (and, for a model without a feature centre,
    exactly the published features); a centred teacher's features are its state minus a
    statistic of its own, which a student gets from ``rvm-ros fit-center`` afterwards.
    """
    height, width = frames.shape[1:3]
    state = model.init_state(1, height, width)
    out = []
    for frame in frames:
        _, state = model.step(torch.from_numpy(np.ascontiguousarray(frame))[None], state)
        out.append(state[0].float())
    return torch.stack(out)


@torch.no_grad()
def in_teacher_space(pair: Pair, student_feats: torch.Tensor) -> torch.Tensor:
    """Student features in the teacher's width (through the adapter when there is one)."""
    return student_feats if pair.adapter is None else pair.adapter(student_feats)


def cosine_per_frame(teacher_mapped: torch.Tensor, student: torch.Tensor) -> np.ndarray:
    """Mean cosine over tokens per frame: ``[F, N, D]`` x2 -> ``[F]``."""
    return F.cosine_similarity(teacher_mapped, student, dim=-1).mean(-1).numpy()


def drift(cosines: np.ndarray) -> dict[str, float]:
    """Trend of the per-frame cosine: least-squares slope per 100 frames, first / last 50."""
    n = len(cosines)
    x = np.arange(n, dtype=np.float64)
    slope = float(np.polyfit(x, cosines.astype(np.float64), 1)[0]) if n > 1 else 0.0
    k = min(50, n)
    return {
        "slope_per_100_frames": 100.0 * slope,
        "first_50_mean": float(cosines[:k].mean()),
        "last_50_mean": float(cosines[-k:].mean()),
    }


def nn_agreement(
    teacher: torch.Tensor, student: torch.Tensor, gaps: Sequence[int] = (1, 4, 12)
) -> dict[str, float]:
    """Patch correspondence agreement between the models' features of one stream.

    For frames ``t`` and ``t + gap`` each model's patch features (frame-centred, cosine)
    give every patch of frame ``t + gap`` its nearest patch in frame ``t``; the agreement
    is the fraction of patches where teacher and student pick the same one.

    Args:
        teacher: ``[F, 1+hw, D]`` teacher features on the student's grid.
        student: ``[F, 1+hw, Ds]`` student features (own width: what a user gets).
        gaps: Frame gaps.

    Returns:
        ``{"gap_<k>": agreement}``.
    """
    out = {}
    for gap in gaps:
        if gap >= len(teacher):
            continue
        picks = []
        for feats in (teacher, student):
            g = feats[:, 1:]
            g = F.normalize(g - g.mean(1, keepdim=True), dim=-1)  # [F, hw, C]
            sims = torch.einsum("fic,fjc->fij", g[gap:], g[:-gap])  # [F-gap, hw, hw]
            picks.append(sims.argmax(-1))
        out[f"gap_{gap}"] = float((picks[0] == picks[1]).float().mean())
    return out


@torch.no_grad()
def _read(features: np.ndarray, xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Unit feature vectors ``[P, C]`` at OpenCV pixels ``xy`` of an ``(H, W)`` image that the
    ``[h, w, C]`` grid tiles evenly."""
    from rvm_ros.tracking.appearance import sample_features

    gh, gw = features.shape[:2]
    k = np.array([gw / size[1], gh / size[0]])  # cells per pixel
    return sample_features(features, xy, k, 0.5 * k)  # pixel centres at (x + 0.5) * k


def tracking_signals(
    model: RVM,
    size: tuple[int, int],
    sequences: Sequence[TrackingSequence],
    gaps: Sequence[int] = (1, 4, 12),
) -> dict[str, float]:
    """The tracking benchmark's RVM-feature signals of one model (docs/BENCHMARKS.md).

    On benchmark sequences (frames resized to the model's input size, streamed from the
    zero state), with frame-centred features: ``best_cell_gap_<k>``, the fraction of
    visible query points whose most similar cell ``k`` frames later (over the whole grid)
    is within one cell of the truth; ``auc``, the probability that a point's similarity to
    its query feature at the true position beats that at a drifted position (1.5 cells
    away in a random direction), over visible points and frames.
    """
    import cv2

    hits = {g: [0, 0] for g in gaps}
    true_sims: list[np.ndarray] = []
    drift_sims: list[np.ndarray] = []
    rng = np.random.default_rng(0)
    for seq in sequences:
        h0, w0 = seq.frames.shape[1:3]
        frames = np.stack(
            [cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA) for f in seq.frames]
        )
        feats = stream_features(model, frames)[:, 1:].numpy()  # [T, hw, D]
        gh, gw = model.config.grid(*size)
        grids = feats.reshape(len(frames), gh, gw, -1)
        grids = grids - grids.mean(axis=(1, 2), keepdims=True)
        scale = np.array([size[1] / w0, size[0] / h0])
        xy = seq.gt_xy * scale  # [P, T, 2] in model pixels
        vis = seq.gt_visible
        query = _read(grids[0], xy[:, 0], size)  # [P, D] unit
        for gap in gaps:
            if gap >= len(frames):
                continue
            cells = grids[gap].reshape(gh * gw, -1)
            cells = cells / np.maximum(np.linalg.norm(cells, axis=-1, keepdims=True), 1e-6)
            best = (query @ cells.T).argmax(-1)
            by, bx = best // gw, best % gw
            cx = np.floor(xy[:, gap, 0] / (size[1] / gw))
            cy = np.floor(xy[:, gap, 1] / (size[0] / gh))
            ok = vis[:, 0] & vis[:, gap]
            near = (np.abs(bx - cx) <= 1) & (np.abs(by - cy) <= 1)
            hits[gap][0] += int((near & ok).sum())
            hits[gap][1] += int(ok.sum())
        cell = size[0] / gh
        for t in range(1, len(frames)):
            ok = vis[:, 0] & vis[:, t]
            if not ok.any():
                continue
            angle = rng.uniform(0, 2 * np.pi, ok.sum())
            off = 1.5 * cell * np.stack([np.cos(angle), np.sin(angle)], -1)
            at = xy[ok, t]
            sim_true = (_read(grids[t], at, size) * query[ok]).sum(-1)
            sim_off = (_read(grids[t], at + off, size) * query[ok]).sum(-1)
            true_sims.append(sim_true)
            drift_sims.append(sim_off)
    out = {f"best_cell_gap_{g}": v[0] / max(1, v[1]) for g, v in hits.items()}
    if true_sims:
        a, b = np.concatenate(true_sims), np.concatenate(drift_sims)
        out["auc"] = float((a > b).mean() + 0.5 * (a == b).mean())
    return out


def speed(
    pair: Pair, backends: Sequence[str], repeats: int = 30, threads: int = 1
) -> dict[str, dict[str, float | str]]:
    """Median step time of teacher and student per backend, alternated in one run.

    Each backend runs both models through :func:`rvm_ros.runtime.create_encoder` (the
    node's path: ONNX export for onnxruntime and openvino), batch 1, fp32, ``threads``
    threads; rounds alternate teacher and student so both see the same machine load.

    Returns:
        ``{backend: {"teacher_ms", "student_ms", "ratio"}}`` or ``{backend: {"error"}}``.
    """
    from rvm_ros.runtime import create_encoder
    from rvm_ros.runtime.base import BackendUnavailable

    results: dict[str, dict[str, float | str]] = {}
    rng = np.random.default_rng(0)
    for backend in backends:
        try:
            runners = {
                name: create_encoder(
                    model,
                    backend=backend,
                    height=size[0],
                    width=size[1],
                    max_batch=1,
                    threads=threads,
                    device="cpu",
                )
                for name, model, size in (
                    ("teacher", pair.teacher, pair.teacher_size),
                    ("student", pair.student, pair.student_size),
                )
            }
        except BackendUnavailable as exc:
            results[backend] = {"error": str(exc)}
            continue
        times: dict[str, list[float]] = {"teacher": [], "student": []}
        frames = {
            "teacher": rng.integers(0, 256, (1, *pair.teacher_size, 3), dtype=np.uint8),
            "student": rng.integers(0, 256, (1, *pair.student_size, 3), dtype=np.uint8),
        }
        for i in range(repeats + 3):
            for name, runner in runners.items():
                t0 = time.perf_counter()
                runner.step(frames[name], ["cam"])
                if i >= 3:  # warm-up rounds not counted
                    times[name].append(time.perf_counter() - t0)
        for runner in runners.values():
            runner.close()
        t_ms = 1e3 * statistics.median(times["teacher"])
        s_ms = 1e3 * statistics.median(times["student"])
        results[backend] = {"teacher_ms": t_ms, "student_ms": s_ms, "ratio": s_ms / t_ms}
    return results


def teacher_on_student_grid(pair: Pair, teacher_feats: torch.Tensor) -> torch.Tensor:
    """Teacher features ``[F, 1+hw, D]`` mapped onto the student's grid."""
    return map_grid(teacher_feats, pair.teacher_grid, pair.student_grid)
