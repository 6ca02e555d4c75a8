"""Held-out masked reconstruction against two baselines.

Clips cut from held-out videos (inside one shot), K source frames, targets at fixed offsets;
the masked-patch MSE of the model, of the per-target mean colour of its visible patches,
and of copying the last source frame, all on the same masks, per offset bucket. Patch
correspondence is :mod:`rvm_ros.evaluation.correspondence`.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rvm_ros.evaluation.held_out import read_eval_video
from rvm_ros.fsutil import atomic_write
from rvm_ros.model import RVM
from rvm_ros.training.data import DataError, shot_boundaries
from rvm_ros.training.masking import num_visible, sample_visible
from rvm_ros.training.objective import masked_patch_errors, reconstruct, source_features

__all__ = [
    "OFFSET_BUCKETS",
    "BucketResult",
    "ReconstructionReport",
    "evaluate_reconstruction",
    "evaluate_synthetic",
]

# Target-offset buckets of the report (inclusive ranges, frames after the last source frame).
OFFSET_BUCKETS: tuple[tuple[int, int], ...] = ((4, 7), (8, 15), (16, 31), (32, 48))


@dataclass
class BucketResult:
    """Mean masked-patch MSE (pixels in [0, 1]) of one offset bucket.

    Attributes:
        offsets: ``(first, last)`` offset of the bucket.
        targets: Target frames evaluated.
        model: The model's MSE.
        mean_colour: Baseline: every masked patch filled with the visible patches' mean colour.
        copy_last: Baseline: the last source frame.
    """

    offsets: tuple[int, int]
    targets: int = 0
    model: float = 0.0
    mean_colour: float = 0.0
    copy_last: float = 0.0


@dataclass
class ReconstructionReport:
    """Result of :func:`evaluate_reconstruction`.

    Attributes:
        checkpoint: Model identifier.
        videos: Held-out videos used.
        clips: Clips evaluated.
        size: ``(height, width)`` of the clips.
        buckets: Per offset bucket.
        overall: All targets together.
    """

    checkpoint: str
    videos: list[str]
    clips: int
    size: tuple[int, int]
    buckets: list[BucketResult] = field(default_factory=list)
    overall: BucketResult = field(default_factory=lambda: BucketResult((0, 0)))

    def to_json(self) -> str:
        """The report as indented JSON."""

        def bucket(b: BucketResult) -> dict[str, object]:
            return {
                "offsets": list(b.offsets),
                "targets": b.targets,
                "model_mse": b.model,
                "mean_colour_mse": b.mean_colour,
                "copy_last_mse": b.copy_last,
                "model_vs_mean_colour": 1.0 - b.model / b.mean_colour if b.mean_colour else None,
                "model_vs_copy_last": 1.0 - b.model / b.copy_last if b.copy_last else None,
            }

        return json.dumps(
            {
                "checkpoint": self.checkpoint,
                "videos": self.videos,
                "clips": self.clips,
                "size": list(self.size),
                "buckets": [bucket(b) for b in self.buckets],
                "overall": bucket(self.overall),
            },
            indent=2,
        )

    def table(self) -> str:
        """Plain-text table of the buckets (what the CLI prints)."""
        lines = [
            f"{'offsets':>9} {'targets':>7} {'model':>9} {'mean-col':>9} {'copy-last':>9} "
            f"{'vs mean':>8} {'vs copy':>8}"
        ]
        for b in [*self.buckets, self.overall]:
            name = "all" if b is self.overall else f"{b.offsets[0]}-{b.offsets[1]}"
            vs_mean = 100 * (1 - b.model / b.mean_colour) if b.mean_colour else float("nan")
            vs_copy = 100 * (1 - b.model / b.copy_last) if b.copy_last else float("nan")
            lines.append(
                f"{name:>9} {b.targets:>7} {b.model:9.5f} {b.mean_colour:9.5f} "
                f"{b.copy_last:9.5f} {vs_mean:7.1f}% {vs_copy:7.1f}%"
            )
        return "\n".join(lines)


def _eval_clips(
    frames: np.ndarray, k: int, clips: int, offsets: Sequence[int]
) -> list[tuple[int, list[int]]]:
    """Deterministic clip starts inside shots with the offsets that fit each one."""
    cuts = [0, *shot_boundaries(frames), len(frames)]
    slots: list[tuple[int, list[int]]] = []
    for a, b in itertools.pairwise(cuts):
        for start in range(a, b - k - min(offsets) + 1, 4):
            fit = [o for o in offsets if start + k - 1 + o < b]
            if fit:
                slots.append((start, fit))
    if not slots:
        return []
    pick = np.linspace(0, len(slots) - 1, min(clips, len(slots))).round().astype(int)
    return [slots[i] for i in sorted(set(pick.tolist()))]


@torch.no_grad()
def evaluate_reconstruction(
    model: RVM,
    videos: Sequence[str],
    clips_per_video: int = 24,
    height: int = 128,
    width: int = 128,
    source_frames: int = 4,
    keep_ratio: float = 0.05,
    seed: int = 0,
    png: str | os.PathLike[str] | None = None,
    name: str = "",
) -> ReconstructionReport:
    """Masked-reconstruction MSE of held-out clips with both baselines, per offset bucket.

    Args:
        model: Model with decoder (eval mode, float32).
        videos: Video paths or ``sample:<name>``.
        clips_per_video: Clips per video (spread evenly over its shots).
        height: Clip height.
        width: Clip width.
        source_frames: K.
        keep_ratio: Visible fraction of each target.
        seed: Seed of the masks.
        png: Write a picture of reconstructions next to the truth here.
        name: Model name for the report.

    Returns:
        The report.

    Raises:
        DataError: Unreadable video or no clip fits.
        ValueError: A model without decoder.
    """
    if model.decoder is None:
        raise ValueError("the checkpoint has no decoder; reconstruction needs one")
    patch = model.config.patch_size
    h, w = model.config.grid(height, width)
    keep = num_visible(h * w, keep_ratio)
    # Two offsets per bucket: its ends.
    offsets = sorted({o for lo, hi in OFFSET_BUCKETS for o in (lo, hi)})
    rng = np.random.default_rng(seed)
    sums = {b: np.zeros(4) for b in OFFSET_BUCKETS}
    total_clips = 0
    picture: list[np.ndarray] = []
    for video in videos:
        frames = read_eval_video(video, height, width)
        for start, fit in _eval_clips(frames, source_frames, clips_per_video, offsets):
            total_clips += 1
            src = torch.from_numpy(frames[start : start + source_frames]).float()[None] / 255
            idx = [start + source_frames - 1 + o for o in fit]
            tgt = torch.from_numpy(frames[idx]).float()[None] / 255  # [1, T, H, W, 3]
            vis = torch.from_numpy(np.stack([sample_visible(rng, h * w, keep) for _ in fit]))[
                None
            ]  # [1, T, V]
            offs = torch.tensor(fit)[None]
            pred = _accumulate(sums, model, src, tgt, offs, vis)
            if png is not None and len(picture) < 6:
                picture.append(_picture_row(src[0, -1], tgt[0], pred[0], vis[0], patch))
    if total_clips == 0:
        raise DataError(f"no clip of {source_frames}+{min(offsets)} frames fits in {list(videos)}")
    report = _report(name, [str(v) for v in videos], total_clips, (height, width), sums)
    if png is not None and picture:
        width_px = max(r.shape[1] for r in picture)
        rows = [
            np.pad(r, ((0, 2), (0, width_px - r.shape[1]), (0, 0)), constant_values=255)
            for r in picture
        ]
        _write_png(np.concatenate(rows, axis=0), Path(png))
    return report


def _accumulate(
    sums: dict[tuple[int, int], np.ndarray],
    model: RVM,
    src: torch.Tensor,
    tgt: torch.Tensor,
    offs: torch.Tensor,
    vis: torch.Tensor,
) -> torch.Tensor:
    """Add one batch of clips' errors (model, mean colour, copy-last) to ``sums``; returns pred."""
    patch = model.config.patch_size
    feats = source_features(model, src)
    pred = reconstruct(model, feats, tgt, offs, vis).float().clamp(0, 1)
    err_model, _ = masked_patch_errors(pred, tgt, vis, patch)
    err_copy, _ = masked_patch_errors(src[:, -1:].expand_as(tgt).contiguous(), tgt, vis, patch)
    err_mean, _ = masked_patch_errors(_mean_colour(tgt, vis, patch), tgt, vis, patch)
    for i in range(offs.shape[0]):
        for j, o in enumerate(offs[i].tolist()):
            bucket = next(b for b in OFFSET_BUCKETS if b[0] <= o <= b[1])
            sums[bucket] += [
                1,
                float(err_model[i, j]),
                float(err_mean[i, j]),
                float(err_copy[i, j]),
            ]
    return pred


def _report(
    name: str,
    sources: list[str],
    clips: int,
    size: tuple[int, int],
    sums: dict[tuple[int, int], np.ndarray],
) -> ReconstructionReport:
    report = ReconstructionReport(name, sources, clips, size)
    all_sum = np.zeros(4)
    for b in OFFSET_BUCKETS:
        s = sums[b]
        all_sum += s
        n = max(1.0, s[0])
        report.buckets.append(BucketResult(b, int(s[0]), s[1] / n, s[2] / n, s[3] / n))
    n = max(1.0, all_sum[0])
    report.overall = BucketResult(
        (OFFSET_BUCKETS[0][0], OFFSET_BUCKETS[-1][1]),
        int(all_sum[0]),
        all_sum[1] / n,
        all_sum[2] / n,
        all_sum[3] / n,
    )
    return report


@torch.no_grad()
def evaluate_synthetic(
    model: RVM,
    images: Sequence[str],
    clips: int = 64,
    height: int = 128,
    width: int = 128,
    seed: int = 12345,
    max_speed: float = 1.0,
) -> ReconstructionReport:
    """The same report on clips made from held-out still images under synthetic motion.

    For tuning without touching the evaluation videos: the images must not be training
    images (:data:`rvm_ros.training.data.HELD_OUT_SAMPLE_IMAGES` are kept out of
    ``data.sample_images``). Offsets are drawn from 4 to 48.
    """
    from rvm_ros.training.config import DataSection
    from rvm_ros.training.data import ClipDataset, collate

    data = DataSection(
        images=tuple(images),
        height=height,
        width=width,
        max_speed=max_speed,
        workers=0,
    )
    dataset = ClipDataset(data, seed, model.config.patch_size)
    sums = {b: np.zeros(4) for b in OFFSET_BUCKETS}
    for first in range(0, clips, 8):
        batch = collate([dataset[i] for i in range(first, min(clips, first + 8))])
        _accumulate(
            sums,
            model,
            batch.source.float() / 255,
            batch.target.float() / 255,
            batch.offsets,
            batch.visible,
        )
    return _report(model.model_id, [str(i) for i in images], clips, (height, width), sums)


def _mean_colour(target: torch.Tensor, visible: torch.Tensor, patch: int) -> torch.Tensor:
    """Each target filled with the mean colour of its visible patches ``[B, T, H, W, 3]``."""
    b, t, height, width, _ = target.shape
    gh, gw = height // patch, width // patch
    grid = target.reshape(b, t, gh, patch, gw, patch, 3).permute(0, 1, 2, 4, 3, 5, 6)
    grid = grid.reshape(b, t, gh * gw, patch * patch, 3)
    index = visible[..., None, None].expand(-1, -1, -1, patch * patch, 3)
    colour = torch.gather(grid, 2, index).mean((2, 3))  # [B, T, 3]
    return colour[:, :, None, None, :].expand_as(target).contiguous()


def _picture_row(
    last: torch.Tensor, target: torch.Tensor, pred: torch.Tensor, vis: torch.Tensor, patch: int
) -> np.ndarray:
    """One row: last source frame, then per target: masked input, prediction, truth."""
    h, w = target.shape[1:3]
    gw = w // patch
    tiles = [last]
    for j in range(target.shape[0]):
        masked = torch.full_like(target[j], 0.5)
        for i in vis[j].tolist():
            y, x = (i // gw) * patch, (i % gw) * patch
            masked[y : y + patch, x : x + patch] = target[j, y : y + patch, x : x + patch]
        tiles += [masked, pred[j], target[j]]
    sep = torch.ones(h, 2, 3)
    row = torch.cat([torch.cat([t, sep], dim=1) for t in tiles], dim=1)
    return (row.clamp(0, 1).numpy() * 255).astype(np.uint8)


def _write_png(rgb: np.ndarray, path: Path) -> None:
    import cv2

    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot write {path}")
    atomic_write(path, lambda tmp: tmp.write_bytes(png.tobytes()))
