"""Training data: video and rosbag2 readers, shots, synthetic correspondences, sharding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvm_ros.bags.make_bag import make_bag
from rvm_ros.training.config import DataSection
from rvm_ros.training.data import (
    ClipDataset,
    DataError,
    StepSampler,
    read_bag_frames,
    read_video_frames,
    shot_boundaries,
)
from rvm_ros.training.synthetic import MotionLimits, SyntheticScene


def test_video_frames_and_cut(moving_video: Path) -> None:
    frames = read_video_frames(moving_video, 64, 64)
    assert frames.dtype == np.uint8 and frames.shape[0] == 40
    assert shot_boundaries(frames) == [30]


def test_evaluation_videos_are_refused(tmp_path: Path) -> None:
    fake = tmp_path / "carphone_pristine.mp4"
    fake.write_bytes(b"")
    with pytest.raises(DataError, match="evaluation material"):
        read_video_frames(fake, 64, 64)


def test_video_clips_stay_inside_a_shot(moving_video: Path) -> None:
    data = DataSection(
        videos=(str(moving_video),),
        height=64,
        width=64,
        source_frames=2,
        target_frames=2,
        max_offset=12,
        min_scale=1.0,
        hflip=0.0,
        workers=0,
    )
    dataset = ClipDataset(data, seed=0)
    # Shots: frames 0-29 and 30-39 (only the first fits 2 + 4 frames... both do).
    assert [(a, b) for _, a, b in dataset.shots] == [(0, 30), (30, 40)]
    for i in range(20):
        clip = dataset[i]
        assert clip.offsets.min() >= 4 and clip.offsets.max() <= 12
        assert (clip.correspondence == -1).all()  # no known correspondence in videos


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("compressed", [False, True])
def test_bag_reader_reads_make_bag_output(
    moving_video: Path, tmp_path: Path, storage: str, compressed: bool
) -> None:
    bag = tmp_path / "bag"
    make_bag([moving_video], bag, storage=storage, compressed=compressed)
    seqs = read_bag_frames(bag, (), 64, 64)
    assert len(seqs) == 1
    ((topic, frames),) = seqs.items()
    assert "drift" in topic
    direct = read_video_frames(moving_video, 64, 64)
    assert frames.shape == direct.shape
    tol = 12 if compressed else 1  # JPEG in the bag vs the decoded video
    assert np.abs(frames.astype(int) - direct.astype(int)).mean() < tol
    dataset = ClipDataset(
        DataSection(
            bags=(str(bag),),
            height=64,
            width=64,
            source_frames=2,
            target_frames=2,
            max_offset=12,
            workers=0,
        ),
        seed=0,
    )
    assert dataset[0].source.shape == (2, 64, 64, 3)


def test_bag_missing_topic_is_an_error(moving_video: Path, tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    make_bag([moving_video], bag)
    with pytest.raises(DataError, match="no image topic"):
        read_bag_frames(bag, ("/nope",), 64, 64)


def test_synthetic_correspondence_is_exact_for_translation() -> None:
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    scene = SyntheticScene(rng, background, 64, 64, MotionLimits(objects=0), scale=0.5)
    # Force a pure translation of exactly one patch (16 px) per 4 frames to the right.
    scene.velocity = np.array([4.0, 0.0]) / 1.0
    scene.accel[:] = 0
    scene.omega = 0.0
    scene.angle0 = 0.0
    scene.zoom_rate = 0.0
    scene.perspective[:] = 0
    corr = scene.correspondence(0.0, 4.0, 16).reshape(4, 4)
    # Camera moved 16 px right: patch (r, c) of the later frame was patch (r, c+1) before.
    expected = (np.arange(4)[:, None] * 4 + np.arange(4)[None, :] + 1).astype(np.int64)
    expected[:, 3] = -1  # came from outside the first frame
    np.testing.assert_array_equal(corr, expected)
    a, b = scene.render(0.0), scene.render(4.0)
    np.testing.assert_allclose(b[:, :48].astype(int), a[:, 16:].astype(int), atol=2)


def test_synthetic_clips_have_valid_correspondences() -> None:
    dataset = ClipDataset(DataSection(procedural=1.0, workers=0), seed=0)
    clip = dataset[0]
    assert clip.correspondence.shape == (4, 64)
    valid = clip.correspondence[clip.correspondence >= 0]
    assert valid.size > 0 and valid.max() < 64


def test_clips_are_a_function_of_seed_and_index() -> None:
    data = DataSection(procedural=1.0, workers=0)
    a, b = ClipDataset(data, seed=3), ClipDataset(data, seed=3)
    np.testing.assert_array_equal(a[11].target, b[11].target)
    assert not np.array_equal(a[11].target, a[12].target)


def test_sampler_shards_the_global_batch() -> None:
    single = list(StepSampler(2, 4, 8, 1, 0, 1))
    shards = [list(StepSampler(2, 4, 8, 2, r, 2)) for r in range(2)]
    for step in range(2):
        merged = sorted(
            shards[0][2 * step]
            + shards[0][2 * step + 1]
            + shards[1][2 * step]
            + shards[1][2 * step + 1]
        )
        assert merged == single[step]
    with pytest.raises(DataError, match="divisible"):
        StepSampler(0, 1, 6, 1, 0, 4)


def test_no_data_is_an_error() -> None:
    with pytest.raises(DataError, match="no training data"):
        ClipDataset(DataSection(video_weight=1.0), seed=0)


def test_evaluation_videos_are_named_only_in_the_refusal_list() -> None:
    import rvm_ros.training

    names = ("carphone_pristine", "bigbuckbunny")
    hits = [
        (path.name, line.strip())
        for path in sorted(Path(rvm_ros.training.__file__).parent.rglob("*.py"))
        for line in path.read_text().splitlines()
        if any(n in line for n in names)
    ]
    assert hits == [
        ("data.py", 'EVALUATION_VIDEOS = ("carphone_pristine.mp4", "bigbuckbunny.mp4")')
    ]
