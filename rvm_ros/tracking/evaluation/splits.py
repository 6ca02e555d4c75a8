"""The benchmark's sequences with exact ground truth: real images under known camera motion.

Each sequence is one real still image (a frame of a real video, or a photograph) seen
through a virtual camera that moves along a random smooth homography path (translation,
rotation, scale, mild perspective). Because every frame is a warp of the same source, the
position of any query point in any frame is known exactly: it is the same source point
mapped through that frame's homography. On the ``occluder`` split, shapes cut from
*other* real images move across the view in front of the scene; a point under one is not
visible. Every frame then gets a smooth photometric change (gain, bias, per-channel tint)
and sensor noise.

Ground truth follows the TAP-Vid conventions of :mod:`rvm_ros.tracking.evaluation.tapvid`:
positions ``(x, y)`` in pixels of the frame (continuous coordinates: the centre of pixel
``(r, c)`` is ``(c + 0.5, r + 0.5)``, the project's convention), visibility = inside the
view and not under an occluder, and every point queried on frame 0 (where it is visible).
Half the query points sit on textured places (Shi-Tomasi corners of frame 0), half are
drawn uniformly at random.

Deterministic: the same :class:`BenchmarkConfig` and sources give the same sequences,
bit for bit (one ``numpy`` generator per (seed, split, sequence)).

The parts live beside this module: :mod:`.sequence` (the splits, :class:`BenchmarkConfig`,
:class:`TrackingSequence`), :mod:`.sources` (the real images, development and hold-out),
:mod:`.camera` (the homography path and its ground truth), :mod:`.occluders`,
:mod:`.objects` and :mod:`.street` (the other splits).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from rvm_ros.tracking.evaluation.camera import (
    camera_ground_truth,
    camera_path,
    in_view,
    pixel_of,
    prepare_source,
    query_points,
    smooth,
)
from rvm_ros.tracking.evaluation.objects import object_points
from rvm_ros.tracking.evaluation.occluders import occluder_layer
from rvm_ros.tracking.evaluation.sequence import (
    SPLITS,
    BenchmarkConfig,
    BenchmarkError,
    TrackingSequence,
)
from rvm_ros.tracking.evaluation.sources import Source, development_sources

__all__ = ["make_sequence", "make_sequences"]

Subsets = list[tuple[str, np.ndarray]]
"""Named groups of points, each a bool ``[P]`` mask (see ``TrackingSequence.subsets``)."""


def _render(src: np.ndarray, homs: np.ndarray, cfg: BenchmarkConfig) -> np.ndarray:
    """uint8 ``[T, H, W, 3]``: the source seen through each frame's homography."""
    num_t, h, w = cfg.num_frames, cfg.height, cfg.width
    frames = np.empty((num_t, h, w, 3), np.uint8)
    for i in range(num_t):
        frames[i] = cv2.warpPerspective(
            src,
            homs[i],
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT101,
        )
    return frames


def _camera_points(
    rng: np.random.Generator,
    cfg: BenchmarkConfig,
    frames: np.ndarray,
    homs: np.ndarray,
    occ_mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Points on frame 0 away from the occluders, carried by the camera path:
    ``(gt_xy [P, T, 2], visible [P, T])``."""
    num_t, h, w = cfg.num_frames, cfg.height, cfg.width
    grey0 = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    q_cv = query_points(rng, grey0, ~occ_mask[0], cfg.num_points)  # [P, 2] OpenCV, frame 0
    gt_xy = camera_ground_truth(homs, q_cv)
    col, row = pixel_of(gt_xy, h, w)
    occluded = occ_mask[np.arange(num_t)[None, :], row, col]  # [P, T]
    return gt_xy, in_view(gt_xy, h, w) & ~occluded


def _ground_truth(
    rng: np.random.Generator,
    cfg: BenchmarkConfig,
    split: str,
    frames: np.ndarray,
    homs: np.ndarray,
    sources: list[Source],
    scene: int,
) -> tuple[np.ndarray, np.ndarray, Subsets, np.ndarray | None]:
    """The split's layers painted onto ``frames`` in place, and the points' ground truth:
    ``(gt_xy [P, T, 2], visible [P, T], subsets, occluder mask [T, H, W] or None)``."""
    if split == "objects":
        gt_xy, visible, subsets = object_points(rng, cfg, frames, homs, sources, scene)
        return gt_xy, visible, subsets, None
    if split == "occluder":
        occ_rgb, occ_mask = occluder_layer(rng, cfg, sources, scene)
        frames[occ_mask] = occ_rgb[occ_mask]
    else:
        occ_mask = np.zeros((cfg.num_frames, cfg.height, cfg.width), bool)
    gt_xy, visible = _camera_points(rng, cfg, frames, homs, occ_mask)
    return gt_xy, visible, [], occ_mask if split == "occluder" else None


def _photometric(rng: np.random.Generator, cfg: BenchmarkConfig, frames: np.ndarray) -> np.ndarray:
    """The frames under a smooth gain, bias and tint change, with sensor noise."""
    num_t = frames.shape[0]
    tt = np.linspace(0.0, 1.0, num_t)
    gain = 1.0 + cfg.photometric * smooth(rng, tt)
    bias = 0.5 * cfg.photometric * 255.0 * smooth(rng, tt)
    tint = 1.0 + 0.3 * cfg.photometric * rng.uniform(-1, 1, 3)
    out = np.empty_like(frames)
    for i in range(num_t):
        f = frames[i].astype(np.float32) * np.float32(gain[i]) * tint.astype(np.float32)
        f += np.float32(bias[i])
        if cfg.noise_std > 0:
            f += rng.normal(0.0, cfg.noise_std, size=f.shape).astype(np.float32)
        out[i] = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    return out


def _drop_gap(
    gap_frames: int, frames: np.ndarray, gt_xy: np.ndarray, visible: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """``gap_frames`` frames cut out of the middle: ``(frames, gt_xy, visible, resets)``."""
    num_t = frames.shape[0]
    cut = (num_t - gap_frames) // 2
    kept = np.r_[0:cut, cut + gap_frames : num_t]
    return frames[kept], gt_xy[:, kept], visible[:, kept], (cut,)


def make_sequence(
    cfg: BenchmarkConfig,
    split: str,
    index: int,
    sources: list[Source],
) -> TrackingSequence:
    """Sequence ``index`` of ``split`` (deterministic in ``cfg.seed``, split and index).

    Raises:
        BenchmarkError: an unknown split, or fewer than two sources.
    """
    if split == "street":  # generated street drives: rvm_ros/tracking/evaluation/street.py
        from rvm_ros.tracking.evaluation.street import street_sequence

        return street_sequence(cfg, index)
    if split not in SPLITS:
        raise BenchmarkError(f"unknown split {split!r}; known: {', '.join(SPLITS)}, street")
    if len(sources) < 2:
        raise BenchmarkError("the benchmark needs at least two source images")
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), index])
    if split == "gap":  # generate the frames of the gap too, drop them at the end
        cfg = replace(cfg, num_frames=cfg.num_frames + cfg.gap_frames)
    scene = int(rng.integers(len(sources)))
    name, image = sources[scene]
    src = prepare_source(image, cfg)
    homs = camera_path(rng, cfg, src.shape[:2])  # view -> source
    frames = _render(src, homs, cfg)
    gt_xy, visible, subsets, occ_mask = _ground_truth(rng, cfg, split, frames, homs, sources, scene)
    visible[:, 0] = True
    out = _photometric(rng, cfg, frames)
    resets: tuple[int, ...] = ()
    if split == "gap":
        out, gt_xy, visible, resets = _drop_gap(cfg.gap_frames, out, gt_xy, visible)
    return TrackingSequence(
        name=f"{split}/{index}:{name}",
        split=split,
        frames=out,
        gt_xy=gt_xy,
        gt_visible=visible,
        query_frames=np.zeros(gt_xy.shape[0], np.int64),
        resets=resets,
        occluder_mask=occ_mask,
        subsets=tuple(subsets),
    )


def make_sequences(
    cfg: BenchmarkConfig,
    split: str,
    sources: list[Source] | None = None,
) -> list[TrackingSequence]:
    """All ``cfg.num_sequences`` sequences of one split (development sources by default)."""
    srcs = development_sources() if sources is None else sources
    return [make_sequence(cfg, split, i, srcs) for i in range(cfg.num_sequences)]
