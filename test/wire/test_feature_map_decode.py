"""Planner-side reading of FeatureMap messages (rvm_ros.wire.feature_map_decode).

Messages are real ``rvm_ros.msg`` (rclpy) objects passed through rclpy's CDR
serialisation, and real rosbags message objects passed through rosbags' CDR codec, so the
payload types the consumer sees (``array.array`` / ``np.ndarray``) are the ones a planner
gets from a subscription or a bag.
"""

from __future__ import annotations

import struct
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rvm_ros.imaging.preprocess import Geometry, fit_geometry
from rvm_ros.wire.feature_map_decode import (
    DTYPE_FLOAT16,
    DTYPE_FLOAT32,
    FeatureMapError,
    dtype_code,
    feature_map_payload,
    feature_map_to_numpy,
    pixel_to_cell,
    tokens,
)

RNG = np.random.default_rng(7)


def fields_for(
    features: np.ndarray,
    cls: np.ndarray,
    geometry: Geometry,
    dtype: Any = np.float32,
    cell_size: int = 16,
    pool: int = 1,
) -> dict[str, Any]:
    """FeatureMap fields (without header) for a grid and geometry."""
    cls_bytes, feat_bytes = feature_map_payload(features, cls, dtype)
    h, w, c = features.shape
    return {
        "camera": "front",
        "model_id": "tiny-random0",
        "grid_height": h,
        "grid_width": w,
        "channels": c,
        "dtype": dtype_code(dtype),
        "cls_token": cls_bytes,
        "features": feat_bytes,
        "frames_since_reset": 3,
        "state_reset": False,
        "reset_reason": "",
        "reset_count": 1,
        "image_height": geometry.image_height,
        "image_width": geometry.image_width,
        "model_height": geometry.model_height,
        "model_width": geometry.model_width,
        "resize_mode": geometry.mode,
        "scale_x": geometry.scale_x,
        "scale_y": geometry.scale_y,
        "offset_x": geometry.offset_x,
        "offset_y": geometry.offset_y,
        "cell_size": cell_size,
        "pool": pool,
    }


def rclpy_message(fields: dict[str, Any], sec: int = 12, nanosec: int = 345_678_901) -> Any:
    """A FeatureMap built with the generated rclpy class, serialised and read back."""
    msg_mod = pytest.importorskip("rvm_ros.msg", reason="rvm_ros.msg: run under scripts/ros-env")
    serialization = pytest.importorskip("rclpy.serialization")
    msg = msg_mod.FeatureMap(**fields)
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = nanosec
    msg.header.frame_id = "cam_front"
    raw = serialization.serialize_message(msg)
    return serialization.deserialize_message(raw, msg_mod.FeatureMap)


def rosbags_message(fields: dict[str, Any], sec: int = 12, nanosec: int = 345_678_901) -> Any:
    """The same message as a rosbags object, through rosbags' CDR codec."""
    bags = pytest.importorskip("rvm_ros.bags.rosbag2")
    store = bags.typestore()
    cls = store.types["rvm_ros/msg/FeatureMap"]
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
        frame_id="cam_front",
    )
    values = dict(fields)
    values["cls_token"] = np.frombuffer(values["cls_token"], np.uint8)
    values["features"] = np.frombuffer(values["features"], np.uint8)
    msg = cls(header=header, **values)
    raw = store.serialize_cdr(msg, "rvm_ros/msg/FeatureMap")
    return store.deserialize_cdr(raw, "rvm_ros/msg/FeatureMap")


@pytest.mark.ros
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("make", [rclpy_message, rosbags_message])
def test_round_trip(dtype: Any, make: Any) -> None:
    g = fit_geometry(480, 640, 256, 256, "letterbox")
    feats = RNG.standard_normal((16, 16, 24)).astype(dtype)
    cls = RNG.standard_normal(24).astype(dtype)
    arrays = feature_map_to_numpy(make(fields_for(feats, cls, g, dtype)))
    assert arrays.features.dtype == np.dtype(dtype) and arrays.cls.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(arrays.features, feats)
    np.testing.assert_array_equal(arrays.cls, cls)
    assert (arrays.grid_height, arrays.grid_width, arrays.channels) == (16, 16, 24)
    got = arrays.geometry
    assert (got.image_height, got.image_width, got.model_height, got.model_width) == (
        480,
        640,
        256,
        256,
    )
    assert got.mode == "letterbox"
    # The wire carries float32 scales and offsets.
    for name in ("scale_x", "scale_y", "offset_x", "offset_y"):
        assert getattr(got, name) == float(np.float32(getattr(g, name))), name
    assert (arrays.cell_size, arrays.pool, arrays.camera, arrays.model_id) == (
        16,
        1,
        "front",
        "tiny-random0",
    )
    assert arrays.stamp_ns == 12_345_678_901
    assert (arrays.frames_since_reset, arrays.state_reset, arrays.frame_id) == (
        3,
        False,
        "cam_front",
    )


@pytest.mark.ros
def test_tokens_and_torch_from_rclpy_message() -> None:
    g = fit_geometry(256, 256, 256, 256, "stretch")
    feats = RNG.standard_normal((4, 5, 8)).astype(np.float16)
    cls = RNG.standard_normal(8).astype(np.float16)
    arrays = feature_map_to_numpy(rclpy_message(fields_for(feats, cls, g, np.float16)))
    toks = tokens(arrays)
    assert toks.shape == (21, 8) and toks.dtype == np.float16
    np.testing.assert_array_equal(toks[0], cls)
    np.testing.assert_array_equal(toks[1 + 2 * 5 + 3], feats[2, 3])  # row-major
    np.testing.assert_array_equal(tokens(arrays, include_cls=False), feats.reshape(20, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "array is not writable"
        tf, tc = arrays.to_torch()
        tf32, _ = arrays.to_torch(dtype=torch.float32)
    assert tf.dtype == torch.float16 and tuple(tf.shape) == (4, 5, 8)
    np.testing.assert_array_equal(tf.numpy(), feats)
    np.testing.assert_array_equal(tc.numpy(), cls)
    assert tf32.dtype == torch.float32
    tf[0, 0, 0] = 100.0  # a copy: the message arrays are untouched
    assert arrays.features[0, 0, 0] == feats[0, 0, 0]


def plain_message(**overrides: Any) -> SimpleNamespace:
    g = fit_geometry(480, 640, 256, 256, "stretch")
    feats = np.arange(4 * 5 * 8, dtype=np.float32).reshape(4, 5, 8)
    fields = fields_for(feats, np.zeros(8, np.float32), g)
    fields["header"] = SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=2), frame_id="f")
    fields.update(overrides)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize(
    ("overrides", "cause", "message"),
    [
        (
            {"features": bytes(4 * 5 * 8 * 4 - 1)},
            "size_mismatch",
            "FeatureMap.features has 639 bytes, expected 640 = grid_height 4 x grid_width 5 x "
            "channels 8 x 4 bytes (float32)",
        ),
        (
            {"dtype": DTYPE_FLOAT16},
            "size_mismatch",
            "FeatureMap.cls_token has 32 bytes, expected 16 = channels 8 x 2 bytes (float16)",
        ),
        ({"dtype": 2}, "unknown_dtype", "FeatureMap.dtype 2 is unknown (0 = float32, 1 = float16)"),
        (
            {"grid_width": 0},
            "empty",
            "FeatureMap grid is empty: grid_height 4, grid_width 0, channels 8",
        ),
        ({"resize_mode": "zoom"}, "bad_geometry", "FeatureMap.resize_mode 'zoom' is not one of"),
        ({"scale_y": 0.0}, "bad_geometry", "scales must be > 0, got scale_x 0.4, scale_y 0.0"),
        ({"offset_x": float("nan")}, "bad_geometry", "FeatureMap.offset_x is not finite (nan)"),
        ({"cell_size": 0}, "bad_geometry", "FeatureMap.cell_size is 0"),
        ({"image_width": 0}, "bad_geometry", "FeatureMap.image_width is 0"),
        ({"channels": -1}, "invalid_field", "FeatureMap.channels must be a non-negative integer"),
        ({"features": "text"}, "invalid_field", "FeatureMap.features must be bytes"),
    ],
)
def test_errors(overrides: dict[str, Any], cause: str, message: str) -> None:
    with pytest.raises(FeatureMapError) as info:
        feature_map_to_numpy(plain_message(**overrides))
    assert info.value.cause == cause
    assert message in str(info.value)


def test_missing_field_is_named() -> None:
    msg = plain_message()
    del msg.pool
    with pytest.raises(FeatureMapError, match="FeatureMap has no field 'pool'"):
        feature_map_to_numpy(msg)


def test_pixel_to_cell_matches_the_grid() -> None:
    # 200x200 model with cell 32 (pool 2): grid 6x6 covers 192 px, the last 8 px have no cell.
    g = fit_geometry(100, 100, 200, 200, "stretch")  # scale 2
    feats = np.zeros((6, 6, 2), np.float32)
    feats[..., 0] = np.arange(6)[:, None]  # row index
    feats[..., 1] = np.arange(6)[None, :]  # column index
    msg = plain_message(
        **fields_for(feats, np.zeros(2, np.float32), g, cell_size=32, pool=2),
    )
    arrays = feature_map_to_numpy(msg)
    xs = np.array([0.5, 15.9, 16.0, 50.0, 95.9, 96.0, 99.5, -0.1])
    ys = np.array([0.5, 0.5, 31.9, 50.0, 95.9, 10.0, 10.0, 10.0])
    row, col, valid = pixel_to_cell(arrays, xs, ys)
    np.testing.assert_array_equal(valid, [True, True, True, True, True, False, False, False])
    np.testing.assert_array_equal(col, [0, 0, 1, 3, 5, -1, -1, -1])
    np.testing.assert_array_equal(row, [0, 0, 1, 3, 5, -1, -1, -1])
    np.testing.assert_array_equal(arrays.features[row[valid], col[valid]][:, 0], row[valid])
    np.testing.assert_array_equal(arrays.features[row[valid], col[valid]][:, 1], col[valid])
    assert pixel_to_cell(arrays, 50.0, 50.0) == (3, 3, True)
    assert pixel_to_cell(arrays, 99.0, 50.0) == (-1, -1, False)


def test_grid_smaller_than_geometry_is_bounded() -> None:
    # A grid narrower than model_width // cell_size: cells beyond it are invalid.
    g = fit_geometry(64, 64, 64, 64, "stretch")
    msg = plain_message(**fields_for(np.zeros((4, 2, 3), np.float32), np.zeros(3, np.float32), g))
    arrays = feature_map_to_numpy(msg)
    assert pixel_to_cell(arrays, 20.0, 20.0) == (1, 1, True)
    assert pixel_to_cell(arrays, 40.0, 20.0) == (-1, -1, False)


def test_payload_is_little_endian() -> None:
    cls_b, feat_b = feature_map_payload(
        np.array([[[1.0, -2.0]]], dtype=">f4"), np.array([0.5, 1.0]), np.float16
    )
    assert cls_b == struct.pack("<ee", 0.5, 1.0)
    assert feat_b == struct.pack("<ee", 1.0, -2.0)
    cls_b, feat_b = feature_map_payload(np.ones((1, 1, 1)), np.ones(1), "float32")
    assert cls_b == feat_b == b"\x00\x00\x80\x3f"
    assert dtype_code(torch.float16) == DTYPE_FLOAT16
    assert dtype_code(np.dtype(np.float32)) == DTYPE_FLOAT32
    with pytest.raises(
        ValueError, match=r"must be float32 or float16, got <class 'numpy\.float64'>"
    ):
        dtype_code(np.float64)
    with pytest.raises(ValueError, match=r"expected features \[h, w, C\] and cls \[C\]"):
        feature_map_payload(np.ones((2, 2, 3)), np.ones(4))


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 6),
    st.integers(0, 6),
    st.integers(0, 6),
    st.sampled_from([0, 1, 2, 255]),
    st.integers(0, 400),
    st.integers(0, 40),
)
def test_fuzz_sizes(h: int, w: int, c: int, code: int, n_feat: int, n_cls: int) -> None:
    payload = RNG.integers(0, 256, n_feat, dtype=np.uint8)
    msg = plain_message(
        grid_height=h,
        grid_width=w,
        channels=c,
        dtype=code,
        features=payload,
        cls_token=bytes(n_cls),
    )
    try:
        arrays = feature_map_to_numpy(msg)
    except FeatureMapError as exc:
        assert exc.cause in {"unknown_dtype", "empty", "size_mismatch"}
        return
    item = 4 if code == DTYPE_FLOAT32 else 2
    assert n_feat == h * w * c * item and n_cls == c * item
    assert arrays.features.shape == (h, w, c)
    assert arrays.features.tobytes() == payload.tobytes()
