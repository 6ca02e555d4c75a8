"""rvm_ros.bags.rosbag2: our types in a rosbags typestore, bag writing/reading, damaged bags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rvm_ros.bags import rosbag2 as bags


def _header(store, t_ns: int, frame_id: str = "cam"):
    time = store.types["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
    return store.types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def _image(store, i: int, h: int = 48, w: int = 64):
    data = np.full((h, w, 3), i % 256, np.uint8)
    return store.types[bags.IMAGE_TYPE](
        header=_header(store, i * 10**8),
        height=h,
        width=w,
        encoding="rgb8",
        is_bigendian=0,
        step=w * 3,
        data=data.reshape(-1),
    )


def _feature_map(store, i: int):
    cls = store.types[bags.FEATURE_MAP_TYPE]
    feats = np.arange(12, dtype=np.float32) + i
    return cls(
        header=_header(store, i),
        camera="front",
        model_id="tiny-random0",
        grid_height=2,
        grid_width=2,
        channels=3,
        dtype=0,
        cls_token=np.zeros(12, np.uint8),
        features=np.frombuffer(feats.tobytes(), np.uint8),
        frames_since_reset=i,
        state_reset=i == 0,
        reset_reason="first_frame" if i == 0 else "",
        reset_count=1,
        image_height=32,
        image_width=32,
        model_height=32,
        model_width=32,
        resize_mode="stretch",
        scale_x=1.0,
        scale_y=1.0,
        offset_x=0.0,
        offset_y=0.0,
        cell_size=16,
        pool=1,
    )


def _rosidl_hash(repo_root: Path, name: str) -> str | None:
    for base in (repo_root / "install" / "rvm_ros" / "share", repo_root / "install" / "share"):
        path = base / "rvm_ros" / "msg" / f"{name}.json"
        if path.is_file():
            doc = json.loads(path.read_text())
            for h in doc["type_hashes"]:
                if h["type_name"] == f"rvm_ros/msg/{name}":
                    return str(h["hash_string"])
    return None


def test_find_msg_dir_is_repo_msg(repo_root: Path) -> None:
    assert bags.find_msg_dir().resolve() == (repo_root / "msg").resolve()


@pytest.mark.parametrize("name", bags.MSG_NAMES)
def test_type_hash_matches_rosidl(repo_root: Path, name: str) -> None:
    expected = _rosidl_hash(repo_root, name)
    if expected is None:
        pytest.skip("colcon install/ tree with the rosidl type descriptions not built")
    assert bags.typestore().hash_rihs01(f"rvm_ros/msg/{name}") == expected


def test_typestore_from_folder_without_msgs(tmp_path: Path) -> None:
    with pytest.raises(bags.BagError, match=r"missing in .*FeatureMap\.msg"):
        bags.typestore(tmp_path)


def test_message_class_unknown() -> None:
    with pytest.raises(bags.BagError, match="unknown message type 'nope/msg/Nope'"):
        bags.message_class("nope/msg/Nope")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_write_read_roundtrip(tmp_path: Path, storage: str) -> None:
    store = bags.typestore()
    path = tmp_path / "bag"
    with bags.BagWriter(path, storage) as writer:
        for i in range(5):
            writer.write("/cam/image_raw", bags.IMAGE_TYPE, _image(store, i), i * 10**8)
            writer.write("/rvm/front/features", bags.FEATURE_MAP_TYPE, _feature_map(store, i), i)
    assert writer.counts == {"/cam/image_raw": 5, "/rvm/front/features": 5}
    with bags.BagReader(path) as reader:
        assert reader.storage == storage
        assert reader.topics == {
            "/cam/image_raw": bags.IMAGE_TYPE,
            "/rvm/front/features": bags.FEATURE_MAP_TYPE,
        }
        assert bags.image_topics(reader.topics) == {"/cam/image_raw": bags.IMAGE_TYPE}
        assert reader.message_count == 10
        images = list(reader.messages(["/cam/image_raw"]))
        fmaps = list(reader.messages(["/rvm/front/features"]))
        assert list(reader.messages(["/not/in/the/bag"])) == []
        assert reader.errors == []
    assert [m.timestamp_ns for m in images] == [i * 10**8 for i in range(5)]
    assert [int(m.msg.data[0]) for m in images] == [0, 1, 2, 3, 4]
    assert images[3].msg.header.stamp.nanosec == 3 * 10**8
    last = fmaps[-1].msg
    assert last.camera == "front" and last.frames_since_reset == 4
    np.testing.assert_array_equal(
        np.frombuffer(last.features.tobytes(), np.float32), np.arange(12, dtype=np.float32) + 4
    )


@pytest.mark.ros
def test_bag_payload_deserializes_with_rclpy(tmp_path: Path) -> None:
    """What we write is what the rosidl-generated (ROS 2) message type reads."""
    serialization = pytest.importorskip("rclpy.serialization")
    generated = pytest.importorskip("rvm_ros.msg")
    store = bags.typestore()
    with bags.BagWriter(tmp_path / "bag", "mcap") as writer:
        writer.write("/f", bags.FEATURE_MAP_TYPE, _feature_map(store, 7), 7)
    with bags.BagReader(tmp_path / "bag") as reader:
        conn = reader._reader.connections[0]  # type: ignore[union-attr]
        raw = next(iter(reader._reader.messages([conn])))[2]  # type: ignore[union-attr]
    msg = serialization.deserialize_message(raw, generated.FeatureMap)
    assert msg.camera == "front"
    assert msg.frames_since_reset == 7
    assert msg.resize_mode == "stretch"
    np.testing.assert_array_equal(
        np.frombuffer(bytes(msg.features), np.float32), np.arange(12, dtype=np.float32) + 7
    )


def test_writer_refuses_existing_path(tmp_path: Path) -> None:
    (tmp_path / "bag").mkdir()
    with pytest.raises(bags.BagError, match="exists already"):
        bags.BagWriter(tmp_path / "bag")


def test_writer_unknown_storage(tmp_path: Path) -> None:
    with pytest.raises(bags.BagError, match="unknown bag storage 'zip'"):
        bags.BagWriter(tmp_path / "bag", "zip")


def test_reader_missing_bag(tmp_path: Path) -> None:
    with pytest.raises(bags.BagError, match="does not exist"):
        bags.BagReader(tmp_path / "nope")


def test_reader_not_a_bag(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.yaml").write_text("not: [a bag")
    with pytest.raises(bags.BagError, match="cannot read bag"):
        bags.BagReader(tmp_path / "junk")


def _write_images(path: Path, storage: str, n: int) -> None:
    store = bags.typestore()
    with bags.BagWriter(path, storage) as writer:
        for i in range(n):
            # 96x128x3 = 36 KiB per image: a 1 MiB MCAP chunk holds about 28.
            writer.write("/cam/image_raw", bags.IMAGE_TYPE, _image(store, i, 96, 128), i)


def test_truncated_mcap_reads_up_to_the_damage(tmp_path: Path) -> None:
    path = tmp_path / "bag"
    _write_images(path, "mcap", 100)
    data_file = path / "bag.mcap"
    size = data_file.stat().st_size
    with open(data_file, "r+b") as fh:
        fh.truncate(size * 6 // 10)
    reader = bags.BagReader(path)
    assert reader.recovered
    assert reader.topics == {"/cam/image_raw": bags.IMAGE_TYPE}
    msgs = list(reader.messages())
    # Every message before the cut is readable (also those of the chunk the file ends
    # in), in order, with intact payloads; 60% of the file holds at most 60 of them.
    assert 50 <= len(msgs) <= 60
    assert [int(m.msg.data[0]) for m in msgs] == list(range(len(msgs)))
    assert any("index unreadable" in e and "bag" in e for e in reader.errors)
    assert any(str(data_file) in e and "truncated" in e for e in reader.errors)


def test_corrupt_sqlite_reads_up_to_the_damage(tmp_path: Path) -> None:
    path = tmp_path / "bag"
    _write_images(path, "sqlite3", 100)
    data_file = path / "bag.db3"
    size = data_file.stat().st_size
    with open(data_file, "r+b") as fh:
        fh.seek(size * 6 // 10)
        fh.write(b"\xff" * 8192)
    reader = bags.BagReader(path)
    msgs = [m for m in reader.messages() if m.msg is not None]
    assert 0 < len(msgs) < 100
    assert [int(m.msg.data[0]) for m in msgs] == list(range(len(msgs)))
    assert len(reader.errors) == 1
    assert f"could not read past message {len(msgs)}" in reader.errors[0]
    assert "malformed" in reader.errors[0]


@pytest.mark.parametrize(("storage", "ext"), [("mcap", "mcap"), ("sqlite3", "db3")])
def test_bag_without_metadata_yaml(tmp_path: Path, storage: str, ext: str) -> None:
    """A recorder killed before writing metadata.yaml: the storage file is still read."""
    path = tmp_path / "bag"
    _write_images(path, storage, 5)
    (path / "metadata.yaml").unlink()
    with bags.BagReader(path) as reader:
        msgs = list(reader.messages())
        assert reader.topics == {"/cam/image_raw": bags.IMAGE_TYPE}
        assert reader.storage == storage
    assert [int(m.msg.data[0]) for m in msgs] == [0, 1, 2, 3, 4]
    assert reader.errors == [f"{path}: no metadata.yaml; reading bag.{ext} directly"]
