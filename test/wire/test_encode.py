"""FrameResult -> FeatureMap / TrackedPoints, into real rclpy and rosbags message classes.

Each message is serialised (CDR) and deserialised again, and the payload decoded back
to numpy, so the field values and the byte layout are checked end to end.
"""

from __future__ import annotations

import array
from pathlib import Path

import numpy as np
import pytest

from rvm_ros.imaging.preprocess import fit_geometry
from rvm_ros.pipeline import FrameResult, ImageTracks
from rvm_ros.wire.encode import (
    DTYPE_FLOAT16,
    DTYPE_FLOAT32,
    MessageFieldError,
    feature_map_fields,
    fill_message,
    payload_bytes,
    tracked_points_fields,
)


def make_result(dtype: str = "float16", pool: int = 1, tracks: bool = True) -> FrameResult:
    rng = np.random.default_rng(3)
    h = w = 16 // pool
    c = 24
    feats = (rng.standard_normal((h, w, c)) * 3).astype(dtype)
    cls = rng.standard_normal(c).astype(dtype)
    tr = None
    if tracks:
        tr = ImageTracks(
            ids=np.array([7, 2, 5], np.int32),
            x=np.array([10.5, 300.25, 0.0], np.float32),
            y=np.array([20.0, 5.5, 479.0], np.float32),
            visible=np.array([True, False, True]),
            confidence=np.array([0.9, 0.1, 1.0], np.float32),
        )
    return FrameResult(
        camera="front",
        header=None,
        stamp_ns=1_700_000_000_123_456_789,
        seq=41,
        features=feats,
        cls=cls,
        grid_height=h,
        grid_width=w,
        frames_since_reset=12,
        state_reset=False,
        reset_reason="",
        reset_count=3,
        geometry=fit_geometry(480, 640, 256, 256, "letterbox"),
        cell_size=16 * pool,
        pool=pool,
        model_id="S-3fa2c81d9e07",
        step_ms=4.2,
        tracks=tr,
    )


def decode(fields_or_msg: object, r: FrameResult) -> tuple[np.ndarray, np.ndarray]:
    m = fields_or_msg
    get = m.__getitem__ if isinstance(m, dict) else lambda k: getattr(m, k)
    dt = {DTYPE_FLOAT32: "<f4", DTYPE_FLOAT16: "<f2"}[get("dtype")]
    shape = (get("grid_height"), get("grid_width"), get("channels"))
    feats = np.frombuffer(bytes(get("features")), dt).reshape(shape)
    cls = np.frombuffer(bytes(get("cls_token")), dt)
    return feats, cls


def check_feature_map(m: object, r: FrameResult) -> None:
    g = r.geometry
    expected = {
        "camera": "front",
        "model_id": "S-3fa2c81d9e07",
        "grid_height": r.grid_height,
        "grid_width": r.grid_width,
        "channels": 24,
        "dtype": DTYPE_FLOAT16 if r.features.dtype == np.float16 else DTYPE_FLOAT32,
        "frames_since_reset": 12,
        "state_reset": False,
        "reset_reason": "",
        "reset_count": 3,
        "image_height": 480,
        "image_width": 640,
        "model_height": 256,
        "model_width": 256,
        "resize_mode": "letterbox",
        "cell_size": r.cell_size,
        "pool": r.pool,
    }
    for k, v in expected.items():
        assert getattr(m, k) == v, k
    for k in ("scale_x", "scale_y", "offset_x", "offset_y"):
        assert getattr(m, k) == pytest.approx(float(np.float32(getattr(g, k)))), k
    feats, cls = decode(m, r)
    np.testing.assert_array_equal(feats, r.features)
    np.testing.assert_array_equal(cls, r.cls)


def test_payload_is_little_endian_bytes() -> None:
    v = np.array([1.0, -2.5], np.float32)
    assert payload_bytes(v) == b"\x00\x00\x80\x3f\x00\x00\x20\xc0"
    assert payload_bytes(v.astype(">f4")) == payload_bytes(v)
    assert payload_bytes(np.array([1.0], np.float16)) == b"\x00\x3c"
    with pytest.raises(ValueError, match="float16 or float32, got float64"):
        payload_bytes(np.zeros(2))


@pytest.mark.parametrize(("dtype", "pool"), [("float16", 1), ("float32", 2)])
def test_feature_map_fields(dtype: str, pool: int) -> None:
    r = make_result(dtype, pool)
    fields = feature_map_fields(r)
    assert "header" not in fields
    assert isinstance(fields["features"], bytes)
    assert len(fields["features"]) == r.features.size * r.features.itemsize
    feats, cls = decode(fields, r)
    np.testing.assert_array_equal(feats, r.features)
    np.testing.assert_array_equal(cls, r.cls)


def test_feature_map_fields_refuses_inconsistent_results() -> None:
    r = make_result()
    bad = FrameResult(**{**r.__dict__, "grid_height": 8})
    with pytest.raises(ValueError, match=r"have shape \(16, 16, 24\), expected \[8, 16, C\]"):
        feature_map_fields(bad)
    bad = FrameResult(**{**r.__dict__, "cls": np.zeros(3, np.float16)})
    with pytest.raises(ValueError, match=r"cls token .* shape \(3,\), expected \[24\]"):
        feature_map_fields(bad)
    bad = FrameResult(
        **{**r.__dict__, "features": r.features.astype(np.float64), "cls": r.cls.astype(np.float64)}
    )
    with pytest.raises(ValueError, match="float16 or float32, got float64"):
        feature_map_fields(bad)


def test_tracked_points_fields_sorted_by_id() -> None:
    fields = tracked_points_fields(make_result())
    assert fields["camera"] == "front" and fields["seq"] == 41
    assert [p["id"] for p in fields["points"]] == [2, 5, 7]
    assert fields["points"][0] == {
        "id": 2,
        "x": 300.25,
        "y": 5.5,
        "visible": False,
        "confidence": pytest.approx(0.1),
    }
    assert tracked_points_fields(make_result(tracks=False))["points"] == []


# ----------------------------------------------------------------------------- rclpy


@pytest.fixture(scope="module")
def rclpy_types() -> tuple[type, type, type]:
    msg = pytest.importorskip(
        "rvm_ros.msg", reason="generated rvm_ros.msg not importable (run via scripts/ros-env)"
    )
    std = pytest.importorskip("std_msgs.msg", reason="std_msgs not installed")
    return msg.FeatureMap, msg.TrackedPoints, std.Header


@pytest.mark.ros
@pytest.mark.parametrize(("dtype", "pool"), [("float16", 1), ("float32", 4)])
def test_rclpy_feature_map_round_trip(
    rclpy_types: tuple[type, type, type], dtype: str, pool: int
) -> None:
    from rclpy.serialization import deserialize_message, serialize_message

    feature_map, _, header_cls = rclpy_types
    r = make_result(dtype, pool)
    header = header_cls(frame_id="front_optical")
    header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 123_456_789
    msg = fill_message(feature_map, feature_map_fields(r), header)
    assert isinstance(msg.features, array.array) and msg.features.typecode == "B"
    assert msg.header is header
    back = deserialize_message(serialize_message(msg), feature_map)
    check_feature_map(back, r)
    assert back.header.frame_id == "front_optical" and back.header.stamp.nanosec == 123_456_789
    # every field of the message definition is filled (nothing left at a default by accident)
    assert set(feature_map.get_fields_and_field_types()) == {"header", *feature_map_fields(r)}


@pytest.mark.ros
def test_rclpy_tracked_points_round_trip(rclpy_types: tuple[type, type, type]) -> None:
    from rclpy.serialization import deserialize_message, serialize_message

    _, tracked_points, header_cls = rclpy_types
    r = make_result()
    msg = fill_message(tracked_points, tracked_points_fields(r), header_cls(frame_id="f"))
    back = deserialize_message(serialize_message(msg), tracked_points)
    assert back.camera == "front" and back.seq == 41 and back.header.frame_id == "f"
    got = [(p.id, p.x, p.y, p.visible, round(p.confidence, 5)) for p in back.points]
    assert got == [
        (2, 300.25, 5.5, False, 0.1),
        (5, 0.0, 479.0, True, 1.0),
        (7, 10.5, 20.0, True, 0.9),
    ]
    empty = fill_message(tracked_points, tracked_points_fields(make_result(tracks=False)), None)
    assert list(empty.points) == []


@pytest.mark.ros
def test_rclpy_field_mismatch_is_named(rclpy_types: tuple[type, type, type]) -> None:
    feature_map, _, header_cls = rclpy_types
    fields = feature_map_fields(make_result())
    del fields["pool"]
    fields["colour"] = 1
    with pytest.raises(MessageFieldError, match="missing pool; unknown colour"):
        fill_message(feature_map, fields, header_cls())
    with pytest.raises(TypeError, match="neither an rclpy message class nor a rosbags"):
        fill_message(dict, {}, None)


# ----------------------------------------------------------------------------- rosbags


@pytest.fixture(scope="module")
def rosbags_store(repo_root: Path) -> object:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, object] = {}
    for name in ("FeatureMap", "TrackedPoint", "TrackedPoints"):
        text = (repo_root / "msg" / f"{name}.msg").read_text()
        types.update(get_types_from_msg(text, f"rvm_ros/msg/{name}"))
    store.register(types)  # type: ignore[arg-type]
    return store


def rosbags_header(store: object) -> object:
    t = store.types  # type: ignore[attr-defined]
    stamp = t["builtin_interfaces/msg/Time"](sec=1_700_000_000, nanosec=123_456_789)
    return t["std_msgs/msg/Header"](stamp=stamp, frame_id="front_optical")


@pytest.mark.parametrize(("dtype", "pool"), [("float16", 2), ("float32", 1)])
def test_rosbags_feature_map_round_trip(rosbags_store: object, dtype: str, pool: int) -> None:
    store = rosbags_store
    cls = store.types["rvm_ros/msg/FeatureMap"]  # type: ignore[attr-defined]
    r = make_result(dtype, pool)
    msg = fill_message(cls, feature_map_fields(r), rosbags_header(store))
    raw = store.serialize_cdr(msg, "rvm_ros/msg/FeatureMap")  # type: ignore[attr-defined]
    back = store.deserialize_cdr(raw, "rvm_ros/msg/FeatureMap")  # type: ignore[attr-defined]
    check_feature_map(back, r)
    assert back.header.stamp.nanosec == 123_456_789


def test_rosbags_tracked_points_round_trip(rosbags_store: object) -> None:
    store = rosbags_store
    cls = store.types["rvm_ros/msg/TrackedPoints"]  # type: ignore[attr-defined]
    msg = fill_message(cls, tracked_points_fields(make_result()), rosbags_header(store))
    raw = store.serialize_cdr(msg, "rvm_ros/msg/TrackedPoints")  # type: ignore[attr-defined]
    back = store.deserialize_cdr(raw, "rvm_ros/msg/TrackedPoints")  # type: ignore[attr-defined]
    assert back.camera == "front" and back.seq == 41
    assert [p.id for p in back.points] == [2, 5, 7]
    assert back.points[0].x == 300.25 and back.points[0].visible is False
    # without points too
    msg = fill_message(cls, tracked_points_fields(make_result(tracks=False)), rosbags_header(store))
    raw = store.serialize_cdr(msg, "rvm_ros/msg/TrackedPoints")  # type: ignore[attr-defined]
    assert store.deserialize_cdr(raw, "rvm_ros/msg/TrackedPoints").points == []  # type: ignore[attr-defined]


def test_rosbags_field_mismatch_is_named(rosbags_store: object) -> None:
    cls = rosbags_store.types["rvm_ros/msg/FeatureMap"]  # type: ignore[attr-defined]
    fields = feature_map_fields(make_result())
    del fields["camera"]
    with pytest.raises(MessageFieldError, match="rvm_ros/msg/FeatureMap: missing camera"):
        fill_message(cls, fields, rosbags_header(rosbags_store))
