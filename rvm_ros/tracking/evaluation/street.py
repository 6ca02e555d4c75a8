"""The ``street`` split of the tracking benchmark: generated street drives (parallax).

Each sequence is the front camera of a :class:`rvm_ros.street.StreetDrive` (seeded by the
benchmark's seed and the sequence index): a ground plane, façades, poles, parked and moving
cars and pedestrians at many depths, seen from a vehicle that turns, brakes and stops.
Points are seeded on frame 0 (half on corners, half uniform on non-sky pixels); their
positions are exact projections of fixed points on their planes, and a point is visible
where it is in view and its own plane is the nearest surface at its pixel. Unlike the
homography splits, no single warp explains a frame pair: near ground moves fast, far
façades slowly, moving cars their own way.

Selected with ``split="street"`` in :func:`rvm_ros.tracking.evaluation.splits.make_sequence`.
"""

from __future__ import annotations

import numpy as np

from rvm_ros.street.drive import StreetConfig, StreetDrive
from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig, TrackingSequence

__all__ = ["STREET_FPS", "street_sequence"]

#: Frame rate of the street sequences (a 10-15 Hz automotive camera).
STREET_FPS = 15.0


def street_sequence(cfg: BenchmarkConfig, index: int) -> TrackingSequence:
    """Sequence ``index`` of the ``street`` split.

    Of ``cfg`` it reads seed, num_frames, height, width, num_points and noise_std;
    deterministic in ``cfg.seed`` and ``index``.
    """
    street = StreetConfig(
        seed=100_000 * (cfg.seed + 1) + index,
        duration_s=(cfg.num_frames - 1) / STREET_FPS,
        fps=STREET_FPS,
        cameras=1,
        width=cfg.width,
        height=cfg.height,
        points=cfg.num_points,
        reseed_s=1e6,  # every point is queried on frame 0
        noise_std=cfg.noise_std,
    )
    drive = StreetDrive(street)
    frames, xy, vis = [], [], []
    for f in drive.frames():
        frames.append(f.views["front"].rgb)
        _ids, p, v = f.tracks["front"]
        xy.append(p)
        vis.append(v)
    gt_xy = np.stack(xy, axis=1)  # [P, T, 2]
    gt_vis = np.stack(vis, axis=1)  # [P, T]
    gt_vis[:, 0] = True
    return TrackingSequence(
        name=f"street/{index}:drive{street.seed}",
        split="street",
        frames=np.stack(frames)[: cfg.num_frames],
        gt_xy=np.nan_to_num(gt_xy[:, : cfg.num_frames]),
        gt_visible=gt_vis[:, : cfg.num_frames],
        query_frames=np.zeros(gt_xy.shape[0], np.int64),
    )
