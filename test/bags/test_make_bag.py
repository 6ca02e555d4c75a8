"""rvm-ros make-bag: real video frames into rosbag2 Image / CompressedImage topics."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from bag_helpers import FRAMES, WIDTH

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.bags.make_bag import (
    DEFAULT_START_NS,
    MakeBagError,
    camera_name,
    make_bag,
    read_timed_frames,
)
from rvm_ros.cli import main as cli_main
from rvm_ros.fsutil import OutputError
from rvm_ros.imaging import image_to_array
from rvm_ros.imaging.compressed import compressed_to_array


def _video_frames(video: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    out = []
    for _ in range(n):
        ok, bgr = cap.read()
        assert ok
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h = round(rgb.shape[0] * WIDTH / rgb.shape[1])
        out.append(cv2.resize(rgb, (WIDTH, h), interpolation=cv2.INTER_AREA))
    cap.release()
    return out


@pytest.mark.parametrize(
    ("storage", "compressed"), [("mcap", False), ("sqlite3", False), ("mcap", True)]
)
def test_make_bag_frames_and_stamps(
    bag_factory: Callable[..., Path], sample_video: Path, storage: str, compressed: bool
) -> None:
    bag = bag_factory(storage, compressed)
    expected = _video_frames(sample_video, FRAMES)
    topic = "/cameras/carphone_pristine/image_raw" + ("/compressed" if compressed else "")
    with bags.BagReader(bag) as reader:
        assert reader.storage == storage
        msgtype = bags.COMPRESSED_IMAGE_TYPE if compressed else bags.IMAGE_TYPE
        assert reader.topics == {topic: msgtype}
        msgs = list(reader.messages())
    assert len(msgs) == FRAMES
    stamps = [m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec for m in msgs]
    assert stamps[0] == DEFAULT_START_NS
    assert all(b > a for a, b in itertools.pairwise(stamps))
    # 29.97 fps: one frame every 33.37 ms
    assert stamps[1] - stamps[0] == pytest.approx(1e9 / 29.97, abs=1e3)
    assert [m.timestamp_ns for m in msgs] == stamps
    assert {m.msg.header.frame_id for m in msgs} == {"carphone_pristine"}
    for m, want in zip(msgs, expected, strict=True):
        if compressed:
            got = compressed_to_array(m.msg)
            assert got.shape == want.shape
            assert np.abs(got.astype(int) - want.astype(int)).mean() < 4.0  # JPEG q90
        else:
            assert m.msg.encoding == "rgb8"
            np.testing.assert_array_equal(image_to_array(m.msg), want)


def test_two_videos_two_cameras_in_time_order(tmp_path: Path, sample_video: Path) -> None:
    result = make_bag(
        [sample_video, sample_video], tmp_path / "b", max_frames=3, width=32, topic_prefix="cams"
    )
    assert [c.camera for c in result.cameras] == ["carphone_pristine", "carphone_pristine_1"]
    assert [c.frames for c in result.cameras] == [3, 3]
    with bags.BagReader(tmp_path / "b") as reader:
        msgs = list(reader.messages())
    assert [m.topic for m in msgs] == [
        "/cams/carphone_pristine/image_raw",
        "/cams/carphone_pristine_1/image_raw",
    ] * 3
    times = [m.timestamp_ns for m in msgs]
    assert times == sorted(times)


def test_camera_name() -> None:
    assert camera_name("/x/my-clip.v2.mp4") == "my_clip_v2"
    assert camera_name("7up.mp4") == "cam_7up"


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(MakeBagError, match=r"video .*nope\.mp4: no such file"):
        make_bag([tmp_path / "nope.mp4"], tmp_path / "b")
    assert not (tmp_path / "b").exists()  # no half-written bag left behind


def test_not_a_video(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(MakeBagError, match=r"junk\.mp4"):
        list(read_timed_frames(junk))


def test_existing_output_needs_force(tmp_path: Path, sample_video: Path) -> None:
    out = tmp_path / "b"
    make_bag([sample_video], out, max_frames=1, width=32)
    with pytest.raises(OutputError, match="exists; pass --force"):
        make_bag([sample_video], out, max_frames=1, width=32)
    result = make_bag([sample_video], out, max_frames=2, width=32, force=True)
    assert result.cameras[0].frames == 2


def test_cli_make_bag(
    tmp_path: Path, sample_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b"
    code = cli_main(
        [
            "make-bag",
            str(sample_video),
            "--out",
            str(out),
            "--storage",
            "sqlite3",
            "--compressed",
            "--max-frames",
            "2",
            "--width",
            "64",
            "--topic-prefix",
            "/",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "/carphone_pristine/image_raw/compressed: 2 frames 64x52" in text
    assert (out / "b.db3").is_file()
    assert cli_main(["make-bag", str(sample_video), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert cli_main(["make-bag", str(sample_video), "--out", str(out), "--max-frames", "0"]) == 2
    assert "--max-frames must be >= 1" in capsys.readouterr().err
