"""rvm-ros replay: bags through the node's processing core, outputs read back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from replay_helpers import FRAMES, small_settings

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.bags.make_bag import make_bag
from rvm_ros.cli import main as cli_main
from rvm_ros.fsutil import OutputError
from rvm_ros.pipeline import Processor
from rvm_ros.replay.settings import PARTIAL_MARKER, ReplayError
from rvm_ros.replay.topics import camera_name_from_topic, resolve_topic, topic_cameras
from rvm_ros.replay.workers import replay
from rvm_ros.wire.feature_map_decode import feature_map_to_numpy

TOPIC = "/cameras/carphone_pristine/image_raw"


def _features(out: Path, camera: str = "carphone_pristine") -> list[Any]:
    with bags.BagReader(out / "features") as reader:
        return [m.msg for m in reader.messages([f"/rvm/{camera}/features"])]


def _tracks(out: Path, camera: str = "carphone_pristine") -> list[Any]:
    with bags.BagReader(out / "features") as reader:
        return [m.msg for m in reader.messages([f"/rvm/{camera}/tracks"])]


@pytest.mark.parametrize(
    ("storage", "compressed"),
    [("mcap", False), ("sqlite3", False), ("mcap", True), ("sqlite3", True)],
)
def test_replay_outputs_read_back(
    bag_factory: Callable[..., Path], tmp_path: Path, storage: str, compressed: bool
) -> None:
    bag = bag_factory(storage, compressed)
    out = tmp_path / "out"
    outcome = replay([bag], out, small_settings())
    assert outcome.complete and outcome.out_dir == out
    assert not (tmp_path / "out.partial").exists()
    assert not (out / PARTIAL_MARKER).exists()
    # The features bag has the input's storage and one FeatureMap per frame.
    ext = "mcap" if storage == "mcap" else "db3"
    assert (out / "features" / f"features.{ext}").is_file()
    fmaps = _features(out)
    assert len(fmaps) == FRAMES
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in fmaps]
    assert stamps == sorted(stamps) and len(set(stamps)) == FRAMES
    first = fmaps[0]
    assert first.camera == "carphone_pristine"
    assert first.header.frame_id == "carphone_pristine"
    assert first.model_id == "tiny-random0"
    assert (first.grid_height, first.grid_width, first.channels) == (4, 4, 64)
    assert (first.image_height, first.image_width) == (79, 96)
    assert (first.model_height, first.model_width) == (64, 64)
    assert first.state_reset and first.reset_reason == "first_frame"
    assert [m.frames_since_reset for m in fmaps] == list(range(FRAMES))
    arrays = feature_map_to_numpy(fmaps[-1])
    feats = arrays.features if hasattr(arrays, "features") else arrays["features"]
    assert np.asarray(feats).shape == (4, 4, 64)
    assert np.isfinite(np.asarray(feats, np.float32)).all()
    tracks = _tracks(out)
    assert len(tracks) == FRAMES
    assert [t.seq for t in tracks] == list(range(FRAMES))
    assert len(tracks[0].points) == 9  # track_grid 3
    # The report accounts for every frame.
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is True
    cam = report["cameras"]["carphone_pristine"]
    assert cam["topic"] == TOPIC + ("/compressed" if compressed else "")
    assert (cam["frames_in"], cam["processed"], cam["skipped_total"]) == (FRAMES, FRAMES, 0)
    assert cam["resets"] == {"first_frame": 1}
    assert [f["status"] for f in cam["frames"]] == ["processed"] * FRAMES
    assert [f["stamp_ns"] for f in cam["frames"]] == stamps
    assert cam["step_latency_ms"]["steps"] == FRAMES
    assert 0 < cam["step_latency_ms"]["p50"] <= cam["step_latency_ms"]["p99"]
    assert cam["feature_stability"]["pairs"] == FRAMES - 1
    assert -1.0 <= cam["feature_stability"]["mean_cosine"] <= 1.0
    assert cam["tracks"]["count"] == 9
    assert cam["tracks"]["lifetime_frames"]["max"] == FRAMES
    assert 0.0 <= cam["tracks"]["visible_ratio"] <= 1.0
    assert report["bags"][0]["storage"] == storage
    md = (out / "report.md").read_text()
    assert "carphone_pristine" in md and "random weights" in md


def test_replay_twice_byte_identical(bag_factory: Callable[..., Path], tmp_path: Path) -> None:
    bag = bag_factory("mcap", False)
    replay([bag], tmp_path / "a", small_settings())
    replay([bag], tmp_path / "b", small_settings())
    a, b = _features(tmp_path / "a"), _features(tmp_path / "b")
    assert len(a) == len(b) == FRAMES
    for x, y in zip(a, b, strict=True):
        assert x.dtype == 0  # float32
        assert x.features.tobytes() == y.features.tobytes()
        assert x.cls_token.tobytes() == y.cls_token.tobytes()
    ta, tb = _tracks(tmp_path / "a"), _tracks(tmp_path / "b")
    assert [[(p.id, p.x, p.y, p.visible) for p in t.points] for t in ta] == [
        [(p.id, p.x, p.y, p.visible) for p in t.points] for t in tb
    ]


def test_replay_matches_processor_directly(
    bag_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """The features bag holds exactly what the processing core computes for the frames."""
    from rvm_ros.imaging import image_to_array
    from rvm_ros.pipeline import FrameInput
    from rvm_ros.pipeline.params import config_from_params
    from rvm_ros.runtime import create_encoder

    bag = bag_factory("mcap", False)
    replay([bag], tmp_path / "out", small_settings())
    got = _features(tmp_path / "out")
    settings = small_settings()
    params = dict(settings.params, checkpoint="random:tiny", backend="torch")
    params.update({"cameras": ["carphone_pristine"], "cameras.carphone_pristine.topic": TOPIC})
    cfg = config_from_params(params)
    encoder = create_encoder("random:tiny", "torch", "fp32", None, 64, 64, 1)
    proc = Processor(cfg.processing, encoder)
    with bags.BagReader(bag) as reader:
        for m, fm in zip(reader.messages(), got, strict=True):
            stamp = m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec
            (res,) = proc.process(
                [FrameInput("carphone_pristine", stamp, None, image_to_array(m.msg))]
            )
            assert np.asarray(res.features, np.float32).tobytes() == fm.features.tobytes()


def test_truncated_bag_processes_what_it_can(
    sample_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = tmp_path / "bag"
    # 176x144 rgb8 = 76 KiB per frame: 1 MiB chunks of ~13 frames.
    make_bag([sample_video], bag, "mcap", max_frames=60)
    data = bag / "bag.mcap"
    with open(data, "r+b") as fh:
        fh.truncate(data.stat().st_size // 2)
    out = tmp_path / "out"
    code = cli_main(
        [
            "replay",
            str(bag),
            "--out",
            str(out),
            "--checkpoint",
            "random:tiny",
            "--backend",
            "torch",
            "-p",
            "model_height=64",
            "-p",
            "model_width=64",
            "--no-visuals",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert f"read error: {data}: could not read past message" in captured.err
    assert "truncated" in captured.err
    # Something could not be read: the output is marked partial, never complete-looking.
    assert not out.exists()
    out = tmp_path / "out.partial"
    assert (out / PARTIAL_MARKER).is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is False and report["bags"][0]["complete"] is False
    errors = report["read_errors"]
    assert any("index unreadable" in e for e in errors)
    cam = report["cameras"]["carphone_pristine"]
    assert 0 < cam["processed"] < 60
    assert cam["processed"] == cam["frames_in"] == len(_features(out))


def test_unreadable_image_is_skipped_with_reason(tmp_path: Path) -> None:
    store = bags.typestore()
    comp = store.types[bags.COMPRESSED_IMAGE_TYPE]
    header = store.types["std_msgs/msg/Header"]
    time_cls = store.types["builtin_interfaces/msg/Time"]
    from rvm_ros.imaging.encode import array_to_compressed_fields

    good = array_to_compressed_fields(np.full((32, 48, 3), 100, np.uint8), "jpeg")
    with bags.BagWriter(tmp_path / "bag") as writer:
        for i in range(4):
            data = good["data"] if i != 2 else b"\xff\xd8 definitely not a jpeg"
            msg = comp(
                header=header(stamp=time_cls(sec=1, nanosec=i * 10**7), frame_id="c"),
                format=good["format"],
                data=np.frombuffer(data, np.uint8),
            )
            writer.write("/c/image_raw/compressed", bags.COMPRESSED_IMAGE_TYPE, msg, i)
    outcome = replay([tmp_path / "bag"], tmp_path / "out", small_settings())
    cam = outcome.report["cameras"]["c"]
    assert (cam["frames_in"], cam["processed"], cam["skipped_total"]) == (4, 3, 1)
    assert cam["skipped"] == {"corrupt_compressed": 1}
    frame = cam["frames"][2]
    assert frame["status"] == "skipped" and frame["reason"] == "corrupt_compressed"
    assert "/c/image_raw/compressed message 2" in frame["detail"]
    assert [f["status"] for f in cam["frames"]] == [
        "processed",
        "processed",
        "skipped",
        "processed",
    ]
    assert "corrupt_compressed" in (tmp_path / "out" / "report.md").read_text()


def test_output_exists_needs_force(bag_factory: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="exists; pass --force"):
        replay([bag_factory()], out, small_settings())
    assert (out / "keep.txt").read_text() == "mine"
    outcome = replay([bag_factory()], out, small_settings(), force=True)
    assert outcome.complete and not (out / "keep.txt").exists()


def test_interrupt_leaves_marked_partial_output(
    bag_factory: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = Processor.process

    def interrupting(self: Processor, batch: list[Any]) -> list[Any]:
        if "carphone_pristine" not in self.cameras:
            return original(self, batch)  # the replay's warm-up processor
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Processor, "process", interrupting)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt, match="partial output in"):
        replay([bag_factory()], out, small_settings())
    partial = tmp_path / "out.partial"
    assert not out.exists()
    assert (partial / PARTIAL_MARKER).is_file()
    report = json.loads((partial / "report.json").read_text())
    assert report["complete"] is False and report["interrupted"] is True
    assert report["cameras"]["carphone_pristine"]["processed"] == 4
    assert "INCOMPLETE" in (partial / "report.md").read_text()
    # The features bag was closed properly: readable, with the 4 processed frames.
    assert len(_features(partial)) == 4


def test_config_maps_topics_to_cameras(bag_factory: Callable[..., Path], tmp_path: Path) -> None:
    cfg = tmp_path / "rvm.yaml"
    cfg.write_text(
        "rvm:\n  ros__parameters:\n    cameras: [front]\n"
        f"    cameras.front.topic: {TOPIC}\n    model_height: 64\n    model_width: 64\n"
        "    feature_dtype: float32\n    tracking: false\n    backend: torch\n"
    )
    settings = small_settings(config=cfg)
    settings.params = {}
    outcome = replay([bag_factory()], tmp_path / "out", settings)
    assert list(outcome.report["cameras"]) == ["front"]
    fmaps = _features(tmp_path / "out", "front")
    assert len(fmaps) == FRAMES and fmaps[0].camera == "front"
    assert _tracks(tmp_path / "out", "front") == []  # tracking off in the config
    # A config whose topics are not in the bag: a clear error naming both sides.
    cfg.write_text("rvm:\n  ros__parameters:\n    cameras: [front]\n")
    with pytest.raises(ReplayError, match=rf"/front/image_raw.*image topics: {TOPIC}"):
        replay([bag_factory()], tmp_path / "out2", settings)
    assert not (tmp_path / "out2.partial").exists()


def test_bad_parameter_is_named(bag_factory: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="feature_pool"):
        replay([bag_factory()], tmp_path / "o", small_settings(params={"feature_pool": 3}))


def test_bag_without_images(tmp_path: Path) -> None:
    store = bags.typestore()
    header = store.types["std_msgs/msg/Header"]
    time_cls = store.types["builtin_interfaces/msg/Time"]
    with bags.BagWriter(tmp_path / "bag") as writer:
        writer.write(
            "/h", "std_msgs/msg/Header", header(stamp=time_cls(sec=0, nanosec=0), frame_id=""), 0
        )
    with pytest.raises(ReplayError, match=r"no sensor_msgs/Image .* /h \[std_msgs/msg/Header\]"):
        replay([tmp_path / "bag"], tmp_path / "out", small_settings())


def test_many_bags_in_parallel_workers(bag_factory: Callable[..., Path], tmp_path: Path) -> None:
    one, two = bag_factory("mcap", False), bag_factory("sqlite3", True)
    outcome = replay([one, two], tmp_path / "out", small_settings(), workers=2)
    assert outcome.complete
    report = outcome.report
    assert [Path(b["bag"]).name for b in report["bags"]] == [one.name, two.name]
    assert report["processed"] == 2 * FRAMES
    for b in report["bags"]:
        sub = tmp_path / "out" / Path(b["bag"]).name
        assert json.loads((sub / "report.json").read_text())["complete"] is True
        assert len(_features(sub)) == FRAMES
    # Same bag content (raw vs JPEG aside) → the raw bag matches a single-bag replay.
    single = replay([one], tmp_path / "single", small_settings())
    assert single.complete
    a = _features(tmp_path / "out" / one.name)
    b = _features(tmp_path / "single")
    assert [x.features.tobytes() for x in a] == [y.features.tobytes() for y in b]


def test_resolve_topic() -> None:
    assert resolve_topic("front/image_raw") == "/front/image_raw"
    assert resolve_topic("~/image", "rvm") == "/rvm/image"
    assert resolve_topic("/a/b") == "/a/b"


def test_topic_camera_names() -> None:
    assert camera_name_from_topic("/cameras/front/image_raw/compressed") == "front"
    assert camera_name_from_topic("/front/image") == "front"
    assert camera_name_from_topic("/image_raw") == "image_raw"
    assert topic_cameras(["/a/front/image_raw", "/b/front/image_raw", "/rear/image"]) == {
        "/a/front/image_raw": "a_front_image_raw",
        "/b/front/image_raw": "b_front_image_raw",
        "/rear/image": "rear",
    }


def test_one_failing_bag_of_many(bag_factory: Callable[..., Path], tmp_path: Path) -> None:
    store = bags.typestore()
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""
    )
    with bags.BagWriter(tmp_path / "noimages") as writer:
        writer.write("/h", "std_msgs/msg/Header", header, 0)
    outcome = replay([bag_factory(), tmp_path / "noimages"], tmp_path / "out", small_settings())
    assert not outcome.complete
    assert outcome.out_dir == tmp_path / "out.partial"
    assert (outcome.out_dir / PARTIAL_MARKER).is_file()
    good, bad = outcome.report["bags"]
    assert good["complete"] and good["cameras"]["carphone_pristine"]["processed"] == FRAMES
    assert not bad["complete"] and "no sensor_msgs/Image" in bad["error"]
    md = (outcome.out_dir / "report.md").read_text()
    assert "INCOMPLETE" in md and "**Failed**: bag" in md


def test_two_cameras_with_equal_stamps_run_batched(sample_video: Path, tmp_path: Path) -> None:
    make_bag([sample_video, sample_video], tmp_path / "bag", max_frames=5, width=64)
    outcome = replay([tmp_path / "bag"], tmp_path / "out", small_settings())
    section = outcome.report["bags"][0]
    cams = outcome.report["cameras"]
    assert sorted(cams) == ["carphone_pristine", "carphone_pristine_1"]
    assert all(c["processed"] == 5 for c in cams.values())
    assert section["steps"] == 5  # one batched model step per pair of frames
    a = _features(tmp_path / "out", "carphone_pristine")
    b = _features(tmp_path / "out", "carphone_pristine_1")
    assert [_stamp(m) for m in a] == [_stamp(m) for m in b]
    assert all(m.camera == "carphone_pristine_1" for m in b)


def _stamp(m: Any) -> int:
    return int(m.header.stamp.sec) * 10**9 + int(m.header.stamp.nanosec)


def test_replay_with_an_official_format_checkpoint(
    bag_factory: Callable[..., Path], tmp_path: Path, fixtures_dir: Path
) -> None:
    import hashlib

    ckpt = fixtures_dir / "rvm_tiny_params.npz"
    settings = small_settings()
    settings.checkpoint = str(ckpt)
    outcome = replay([bag_factory()], tmp_path / "out", settings)
    assert outcome.complete
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()[:12]
    fmaps = _features(tmp_path / "out")
    assert len(fmaps) == FRAMES
    assert {m.model_id for m in fmaps} == {f"tiny-{digest}"}
    assert outcome.report["bags"][0]["checkpoint"] == str(ckpt)
    assert "random weights" not in (tmp_path / "out" / "report.md").read_text()


def test_replay_restores_torch_threads(bag_factory: Callable[..., Path], tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        replay([bag_factory()], tmp_path / "out", small_settings())  # runs on 1 thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
