"""What the tracking benchmark is made of: its splits, its settings and a sequence.

A :class:`TrackingSequence` holds frames with exact ground truth under the TAP-Vid
conventions of :mod:`rvm_ros.tracking.evaluation.tapvid`: positions ``(x, y)`` in pixels
of the frame (continuous coordinates: the centre of pixel ``(r, c)`` is
``(c + 0.5, r + 0.5)``, the project's convention), a visibility per point and frame, and
each point's query frame. :mod:`.splits` makes them from a :class:`BenchmarkConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rvm_ros.errors import RvmRosError

__all__ = ["SPLITS", "BenchmarkConfig", "BenchmarkError", "TrackingSequence"]

SPLITS: tuple[str, ...] = ("plain", "occluder", "gap", "objects")
"""``plain``: camera motion only; ``occluder``: shapes cut from other images cross the
view; ``gap``: a ``plain`` sequence with ``gap_frames`` frames missing in the middle, the
trackers reset there as the node resets on a gap in the stream; ``objects``: textured
objects moving on their own paths over the moving view, in depth order, with query points
on them and on the background (:mod:`rvm_ros.tracking.evaluation.objects`)."""


class BenchmarkError(RvmRosError, ValueError):
    """The benchmark cannot be built (bad settings, missing or unreadable sources)."""

    cause = "invalid_benchmark"
    exit_code = 2


@dataclass(frozen=True)
class BenchmarkConfig:
    """How the sequences are made.

    Attributes:
        seed: seed of every random choice.
        num_sequences: sequences per split.
        num_frames: frames per sequence (≥ 2).
        height: frame height in pixels (≥ 32).
        width: frame width in pixels (≥ 32).
        num_points: query points per sequence (half on corners, half random).
        max_speed: largest camera translation speed, pixels per frame at 256 px (the path's
            speed varies smoothly between a third of it and all of it).
        max_rotation_deg: largest rotation reached over a sequence.
        max_zoom: largest scale factor reached over a sequence (and its inverse).
        perspective: largest perspective coefficient (times the frame size).
        occluders: ``(min, max)`` number of occluders per sequence of the occluder split.
        objects: ``(min, max)`` number of moving objects per sequence of the objects split.
        noise_std: sensor noise (grey levels, Gaussian).
        photometric: amplitude of the smooth gain change (0.2: gain within 0.8-1.2).
        gap_frames: frames missing in the middle of a ``gap`` sequence (≥ 1; the camera
            keeps moving through them, so the frames either side are that far apart).
    """

    seed: int = 0
    num_sequences: int = 8
    num_frames: int = 48
    height: int = 256
    width: int = 256
    num_points: int = 64
    max_speed: float = 3.5
    max_rotation_deg: float = 20.0
    max_zoom: float = 1.3
    perspective: float = 0.15
    occluders: tuple[int, int] = (1, 3)
    objects: tuple[int, int] = (3, 5)
    noise_std: float = 3.0
    photometric: float = 0.2
    gap_frames: int = 12

    def __post_init__(self) -> None:
        ints = {
            "num_sequences": (self.num_sequences, 1),
            "num_frames": (self.num_frames, 2),
            "height": (self.height, 32),
            "width": (self.width, 32),
            "num_points": (self.num_points, 1),
            "gap_frames": (self.gap_frames, 1),
        }
        for name, (value, low) in ints.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise BenchmarkError(
                    f"BenchmarkConfig.{name} must be an integer ≥ {low}, got {value!r}"
                )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise BenchmarkError(f"BenchmarkConfig.seed must be an integer ≥ 0, got {self.seed!r}")
        reals: dict[str, tuple[float, float, float]] = {
            "max_speed": (self.max_speed, 0.0, 64.0),
            "max_rotation_deg": (self.max_rotation_deg, 0.0, 180.0),
            "max_zoom": (self.max_zoom, 1.0, 4.0),
            "perspective": (self.perspective, 0.0, 1.0),
            "noise_std": (self.noise_std, 0.0, 64.0),
            "photometric": (self.photometric, 0.0, 0.9),
        }
        for name, (real, lo_r, hi_r) in reals.items():
            ok = isinstance(real, (int, float)) and not isinstance(real, bool)
            if not ok or not (lo_r <= float(real) <= hi_r):
                raise BenchmarkError(
                    f"BenchmarkConfig.{name} must be a number in [{lo_r}, {hi_r}], got {real!r}"
                )
        for name, (lo, hi), low in (("occluders", self.occluders, 0), ("objects", self.objects, 1)):
            if not (isinstance(lo, int) and isinstance(hi, int) and low <= lo <= hi <= 16):
                raise BenchmarkError(
                    f"BenchmarkConfig.{name} must be (min, max) with {low} ≤ min ≤ max ≤ 16, "
                    f"got {(lo, hi)!r}"
                )


@dataclass(frozen=True, eq=False)
class TrackingSequence:
    """One sequence with its ground truth.

    Attributes:
        name: ``<split>/<index>:<source name>``.
        split: one of :data:`SPLITS` (``bag`` for a bag's sequence).
        frames: uint8 ``[T, H, W, 3]`` RGB.
        gt_xy: float64 ``[P, T, 2]`` true positions (continuous pixel coordinates), also
            where the point is not visible (outside the view or occluded).
        gt_visible: bool ``[P, T]``.
        query_frames: int64 ``[P]`` (all 0: every point is queried on frame 0).
        resets: frames before which the trackers are reset (``gap``: the first frame after
            the gap; empty otherwise).
        occluder_mask: bool ``[T, H, W]``: pixels under an occluder (``occluder`` split;
            None otherwise); object masks for label propagation.
        subsets: named groups of points reported separately besides all points
            (``objects``: ``on objects`` and ``background``), each a bool ``[P]`` mask.
    """

    name: str
    split: str
    frames: np.ndarray
    gt_xy: np.ndarray
    gt_visible: np.ndarray
    query_frames: np.ndarray
    resets: tuple[int, ...] = ()
    occluder_mask: np.ndarray | None = None
    subsets: tuple[tuple[str, np.ndarray], ...] = ()

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def query_xy(self) -> np.ndarray:
        """float64 ``[P, 2]`` query positions (on each point's query frame)."""
        p = np.arange(self.gt_xy.shape[0])
        return np.asarray(self.gt_xy[p, self.query_frames])
