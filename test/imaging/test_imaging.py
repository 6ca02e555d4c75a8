"""Image message <-> array conversion (rvm_ros.imaging.image_msg).

Raw payloads are built here with numpy from known values and the expected RGB arrays are
computed independently (channel picking, ``>> 8``), so every comparison is exact. Real
JPEG / PNG data comes from OpenCV's encoder or is assembled byte by byte (zlib + chunk
CRCs), including a genuine decompression bomb.
"""

from __future__ import annotations

import array
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rvm_ros.imaging import (
    DEFAULT_MAX_IMAGE_PIXELS,
    SUPPORTED_ENCODINGS,
    ImageError,
    image_to_array,
)
from rvm_ros.imaging.compressed import compressed_size, compressed_to_array
from rvm_ros.imaging.encode import array_to_compressed_fields, array_to_image_fields

RNG = np.random.default_rng(1234)

# encoding -> (channels, numpy value type, how message channels become RGB)
PLAIN = {
    "rgb8": (3, np.uint8, "rgb"),
    "bgr8": (3, np.uint8, "bgr"),
    "rgba8": (4, np.uint8, "rgb"),
    "bgra8": (4, np.uint8, "bgr"),
    "mono8": (1, np.uint8, "gray"),
    "8UC1": (1, np.uint8, "gray"),
    "8UC3": (3, np.uint8, "bgr"),
    "8UC4": (4, np.uint8, "bgr"),
    "rgb16": (3, np.uint16, "rgb"),
    "bgr16": (3, np.uint16, "bgr"),
    "rgba16": (4, np.uint16, "rgb"),
    "bgra16": (4, np.uint16, "bgr"),
    "mono16": (1, np.uint16, "gray"),
    "16UC1": (1, np.uint16, "gray"),
    "16UC3": (3, np.uint16, "bgr"),
    "32FC1": (1, np.float32, "gray"),
    "32FC3": (3, np.float32, "bgr"),
    "32FC4": (4, np.float32, "bgr"),
}


def to_8bit(values: np.ndarray) -> np.ndarray:
    """cv_bridge's 16 -> 8 bit scaling, round(v * 255 / 65535), in exact integer arithmetic."""
    return ((values.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)


def expected_rgb(values: np.ndarray, how: str) -> np.ndarray:
    """Independent reference: message-order values [H, W, C] -> expected RGB output."""
    if how == "gray":
        picked = np.repeat(values[..., :1], 3, axis=2)
    elif how == "bgr":
        picked = values[..., [2, 1, 0]]
    else:
        picked = values[..., [0, 1, 2]]
    if values.dtype == np.uint16:
        return to_8bit(picked)
    if values.dtype == np.float32:
        return np.clip(picked, 0.0, 1.0)
    return picked.astype(np.uint8)


def random_values(h: int, w: int, channels: int, dtype: Any) -> np.ndarray:
    if dtype == np.float32:
        vals = RNG.uniform(-0.25, 1.25, size=(h, w, channels)).astype(np.float32)
        vals[0, 0, 0] = np.nan
        return vals
    info = np.iinfo(dtype)
    return RNG.integers(0, int(info.max) + 1, size=(h, w, channels), dtype=dtype)


def make_message(
    values: np.ndarray, encoding: str, big_endian: bool, padding: int, container: str
) -> SimpleNamespace:
    """A raw Image message with the given values, byte order, row padding and data type."""
    h, w, _ = values.shape
    wire = values.dtype.newbyteorder(">" if big_endian else "<")
    rows = values.astype(wire).reshape(h, -1).view(np.uint8)
    if padding:
        # Non-zero padding: it must be ignored.
        pad = np.full((h, padding), 0xAB, dtype=np.uint8)
        rows = np.concatenate([rows, pad], axis=1)
    raw = rows.tobytes()
    data: Any
    if container == "bytes":
        data = raw
    elif container == "array":
        data = array.array("B", raw)
    elif container == "ndarray":
        data = np.frombuffer(raw, dtype=np.uint8).copy()
    else:
        data = list(raw)
    return SimpleNamespace(
        height=h, width=w, encoding=encoding, is_bigendian=big_endian, step=rows.shape[1], data=data
    )


@pytest.mark.parametrize("encoding", sorted(PLAIN))
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("padding", [0, 7])
def test_raw_encodings_match_reference(encoding: str, big_endian: bool, padding: int) -> None:
    channels, dtype, how = PLAIN[encoding]
    values = random_values(5, 9, channels, dtype)
    msg = make_message(values, encoding, big_endian, padding, "bytes")
    out = image_to_array(msg)
    expected = expected_rgb(values, how)
    assert out.shape == (5, 9, 3)
    assert out.dtype == (np.float32 if dtype == np.float32 else np.uint8)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)  # NaN == NaN for assert_array_equal


@pytest.mark.parametrize("container", ["bytes", "array", "ndarray", "list"])
def test_data_containers(container: str) -> None:
    values = random_values(4, 6, 3, np.uint8)
    msg = make_message(values, "bgr8", False, 3, container)
    np.testing.assert_array_equal(image_to_array(msg), values[..., ::-1])


def test_mono16_byte_order_explicit() -> None:
    # 0x1234 little endian is bytes 34 12; big endian 12 34. 0x1234 * 255 / 65535 = 18.13,
    # 0x00ff * 255 / 65535 = 0.99 (a plain >> 8 would give 0).
    little = SimpleNamespace(
        height=1, width=2, encoding="mono16", is_bigendian=False, step=4, data=b"\x34\x12\xff\x00"
    )
    big = SimpleNamespace(
        height=1, width=2, encoding="mono16", is_bigendian=True, step=4, data=b"\x12\x34\x00\xff"
    )
    np.testing.assert_array_equal(image_to_array(little)[0, :, 0], [18, 1])
    np.testing.assert_array_equal(image_to_array(big)[0, :, 0], [18, 1])
    # Extremes and the values next to a rounding boundary (v / 257 = k + 128/257 or 129/257).
    vals = np.array([0, 128, 129, 385, 386, 65406, 65407, 65535], dtype="<u2")
    msg = SimpleNamespace(
        height=1, width=8, encoding="mono16", is_bigendian=0, step=16, data=vals.tobytes()
    )
    np.testing.assert_array_equal(image_to_array(msg)[0, :, 0], [0, 0, 1, 1, 2, 254, 255, 255])


def test_float_nan_preserved_and_clipped() -> None:
    values = np.array([[[np.nan], [-1.0], [0.25], [2.0]]], dtype=np.float32)
    msg = make_message(values, "32FC1", False, 0, "bytes")
    out = image_to_array(msg)
    assert out.dtype == np.float32 and out.shape == (1, 4, 3)
    assert np.isnan(out[0, 0]).all()
    np.testing.assert_array_equal(out[0, 1:, 0], [0.0, 0.25, 1.0])


def test_rgb8_without_padding_is_a_zero_copy_view() -> None:
    values = random_values(3, 4, 3, np.uint8)
    raw = bytearray(values.tobytes())
    msg = SimpleNamespace(height=3, width=4, encoding="rgb8", is_bigendian=0, step=12, data=raw)
    out = image_to_array(msg)
    assert np.shares_memory(out, np.frombuffer(raw, np.uint8))
    np.testing.assert_array_equal(out, values)


def test_encoding_name_case_and_whitespace_are_ignored() -> None:
    values = random_values(2, 2, 3, np.uint8)
    msg = make_message(values, " BGR8 ", False, 0, "bytes")
    np.testing.assert_array_equal(image_to_array(msg), values[..., ::-1])


@pytest.mark.parametrize(
    ("encoding", "top_left"),
    [("bayer_rggb8", "R"), ("bayer_bggr8", "B"), ("bayer_gbrg8", "G"), ("bayer_grbg8", "G")],
)
def test_bayer_constant_colour(encoding: str, top_left: str) -> None:
    # A uniform colour mosaiced in the named pattern demosaics to that colour.
    colour = {"R": 200, "G": 100, "B": 30}
    pattern = encoding[len("bayer_") : len("bayer_") + 4].upper()
    mosaic = np.zeros((8, 10), dtype=np.uint8)
    for i, ch in enumerate(pattern):
        mosaic[i // 2 :: 2, i % 2 :: 2] = colour[ch]
    assert pattern[0] == top_left
    msg = SimpleNamespace(
        height=8, width=10, encoding=encoding, is_bigendian=0, step=10, data=mosaic.tobytes()
    )
    out = image_to_array(msg)
    assert out.shape == (8, 10, 3)
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.broadcast_to([200, 100, 30], (4, 6, 3)))


def test_yuv422_orders_agree_and_grey_stays_grey() -> None:
    ys = np.array([[16, 60, 128, 235]], dtype=np.uint8)
    uyvy = np.stack([np.full_like(ys, 128), ys], axis=-1).reshape(1, -1)  # U Y0 V Y1 ...
    yuyv = np.stack([ys, np.full_like(ys, 128)], axis=-1).reshape(1, -1)  # Y0 U Y1 V ...
    out_uyvy = image_to_array(
        SimpleNamespace(height=1, width=4, encoding="yuv422", is_bigendian=0, step=8, data=uyvy)
    )
    out_yuyv = image_to_array(
        SimpleNamespace(
            height=1, width=4, encoding="yuv422_yuy2", is_bigendian=0, step=8, data=yuyv
        )
    )
    np.testing.assert_array_equal(out_uyvy, out_yuyv)
    grey = out_uyvy[0].astype(int)
    assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()
    assert list(grey[:, 0]) == sorted(grey[:, 0]) and grey[0, 0] < 20 and grey[-1, 0] > 235


def test_array_to_image_fields_round_trips() -> None:
    rgb = random_values(6, 5, 3, np.uint8)
    for enc in ("rgb8", "bgr8", "rgba8", "bgra8"):
        for pad in (0, 3):
            fields = array_to_image_fields(rgb, enc, row_padding=pad)
            assert fields["step"] == 5 * (4 if "a" in enc[-2:] else 3) + pad
            assert len(fields["data"]) == fields["step"] * 6
            np.testing.assert_array_equal(image_to_array(SimpleNamespace(**fields)), rgb)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    for enc in ("mono8", "mono16"):
        for big in (False, True):
            out = image_to_array(
                SimpleNamespace(**array_to_image_fields(rgb, enc, is_bigendian=big))
            )
            np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    out = image_to_array(SimpleNamespace(**array_to_image_fields(rgb, "32FC3")))
    np.testing.assert_allclose(out, rgb / 255.0, atol=1e-6)
    with pytest.raises(ValueError, match="encoding 'yuv444' not supported"):
        array_to_image_fields(rgb, "yuv444")
    with pytest.raises(ValueError, match=r"expected an RGB array \[H, W, 3\], got shape \(6, 5\)"):
        array_to_image_fields(gray)


def test_sensor_msgs_image_through_rclpy_type() -> None:
    sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs not importable")
    rgb = random_values(7, 11, 3, np.uint8)
    msg = sensor_msgs.Image(**array_to_image_fields(rgb, "bgr8", row_padding=1))
    assert isinstance(msg.data, array.array)
    np.testing.assert_array_equal(image_to_array(msg), rgb)
    cmsg = sensor_msgs.CompressedImage(**array_to_compressed_fields(rgb, "png"))
    np.testing.assert_array_equal(compressed_to_array(cmsg), rgb)


def test_rosbags_messages_through_cdr() -> None:
    typesys = pytest.importorskip("rosbags.typesys")
    store = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam"
    )
    rgb = random_values(5, 6, 3, np.uint8)
    fields = array_to_image_fields(rgb, "mono16", is_bigendian=True, row_padding=2)
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    image_cls = store.types["sensor_msgs/msg/Image"]
    raw = store.serialize_cdr(image_cls(header=header, **fields), "sensor_msgs/msg/Image")
    msg = store.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    assert isinstance(msg.data, np.ndarray)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(image_to_array(msg), np.repeat(gray[..., None], 3, axis=2))
    comp = array_to_compressed_fields(rgb, "png")
    comp_cls = store.types["sensor_msgs/msg/CompressedImage"]
    raw = store.serialize_cdr(
        comp_cls(header=header, format=comp["format"], data=np.frombuffer(comp["data"], np.uint8)),
        "sensor_msgs/msg/CompressedImage",
    )
    cmsg = store.deserialize_cdr(raw, "sensor_msgs/msg/CompressedImage")
    np.testing.assert_array_equal(compressed_to_array(cmsg), rgb)


def test_same_arrays_as_cv_bridge() -> None:
    try:
        from cv_bridge import CvBridge  # type: ignore[import-not-found]
    except Exception as exc:  # ImportError, or the ROS 1 port failing under numpy 2
        pytest.skip(f"cv_bridge not usable here ({exc}); ROS 2 cv_bridge is in no registry")
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    bridge = CvBridge()
    rgb = random_values(7, 11, 3, np.uint8)
    for enc in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16"):
        msg = sensor_msgs.Image(**array_to_image_fields(rgb, enc))
        np.testing.assert_array_equal(image_to_array(msg), bridge.imgmsg_to_cv2(msg, "rgb8"))


# --- errors -------------------------------------------------------------------------------


def raw_msg(**overrides: Any) -> SimpleNamespace:
    fields: dict[str, Any] = {
        "height": 480,
        "width": 640,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": 1920,
        "data": bytes(1920 * 480),
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize(
    ("overrides", "cause", "message"),
    [
        (
            {"data": bytes(1000)},
            "size_mismatch",
            "Image data has 1000 bytes, expected at least step*height = 921600 "
            "(step 1920, height 480)",
        ),
        (
            {"data": bytes(921601)},
            "size_mismatch",
            "Image data has 921601 bytes, expected exactly step*height = 921600 "
            "(step 1920, height 480)",
        ),
        (
            {"step": 1919},
            "size_mismatch",
            "Image.step 1919 is smaller than width * bytes_per_pixel = 1920 "
            "(width 640, encoding rgb8: 3 bytes per pixel)",
        ),
        ({"encoding": "yuv444"}, "unknown_encoding", "Image.encoding 'yuv444' is not supported"),
        ({"encoding": 7}, "invalid_field", "Image.encoding must be a string, got int"),
        ({"width": 0}, "empty", "Image is empty: width 0, height 480"),
        ({"height": -1}, "invalid_field", "Image.height must be >= 0, got -1"),
        ({"height": 4.0}, "invalid_field", "Image.height must be an integer, got float"),
        ({"data": "abc"}, "invalid_field", "Image.data must be bytes, array.array"),
        ({"data": [1, 2, 300] * 307200}, "invalid_field", "Image.data list must hold integers"),
        (
            {"data": np.zeros(921600, dtype=np.float32)},
            "invalid_field",
            "Image.data must hold bytes (uint8), got dtype float32",
        ),
        (
            {"width": 3, "step": 6, "encoding": "yuv422", "data": bytes(6 * 480)},
            "size_mismatch",
            "Image.width 3 must be even for encoding yuv422",
        ),
        (
            {"width": 100_000, "height": 100_000, "step": 300_000, "data": b""},
            "too_large",
            "Image of width 100000 x height 100000 = 10000000000 pixels exceeds "
            f"max_image_pixels {DEFAULT_MAX_IMAGE_PIXELS}",
        ),
    ],
)
def test_image_errors(overrides: dict[str, Any], cause: str, message: str) -> None:
    with pytest.raises(ImageError) as info:
        image_to_array(raw_msg(**overrides))
    assert info.value.cause == cause
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_field_is_named() -> None:
    msg = raw_msg()
    del msg.step
    with pytest.raises(ImageError, match="Image message has no field 'step'") as info:
        image_to_array(msg)
    assert info.value.cause == "invalid_field"


def test_max_image_pixels_is_a_parameter() -> None:
    values = random_values(10, 10, 3, np.uint8)
    msg = make_message(values, "rgb8", False, 0, "bytes")
    assert image_to_array(msg, max_image_pixels=100).shape == (10, 10, 3)
    with pytest.raises(ImageError, match="= 100 pixels exceeds max_image_pixels 99"):
        image_to_array(msg, max_image_pixels=99)


# --- compressed ---------------------------------------------------------------------------


def smooth_image(h: int = 48, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) % 256], -1).astype(
        np.uint8
    )


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def make_png(width: int, height: int, row_source: Any = None) -> bytes:
    """A valid 8-bit greyscale PNG written by hand; rows of zeros unless given."""
    comp = zlib.compressobj(9)
    parts = []
    zero_row = bytes(width + 1)  # filter byte + pixels
    for r in range(height):
        parts.append(comp.compress(zero_row if row_source is None else row_source(r)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt_string", ["png", "rgb8; png compressed bgr8", "PNG", ""])
def test_png_is_lossless(fmt_string: str) -> None:
    rgb = smooth_image()
    data = array_to_compressed_fields(rgb, "png")["data"]
    out = compressed_to_array(SimpleNamespace(format=fmt_string, data=data))
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("fmt_string", ["jpeg", "bgr8; jpeg compressed bgr8", "jpg", ""])
def test_jpeg_decodes_close(fmt_string: str) -> None:
    rgb = smooth_image()
    fields = array_to_compressed_fields(rgb, "jpeg", quality=95)
    assert fields["format"] == "rgb8; jpeg compressed bgr8"
    out = compressed_to_array(SimpleNamespace(format=fmt_string, data=fields["data"]))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    # Channel order right (a swap would give errors near 100) and quality-95 close.
    assert np.abs(out.astype(int) - rgb).mean() < 3.0


def test_compressed_grey_16bit_and_alpha_pngs() -> None:
    grey = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)
    _, enc = cv2.imencode(".png", grey)
    out = compressed_to_array(SimpleNamespace(format="mono8; png compressed mono8", data=enc))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))
    deep = RNG.integers(0, 65536, size=(5, 7), dtype=np.uint16)
    _, enc = cv2.imencode(".png", deep)
    out = compressed_to_array(SimpleNamespace(format="png", data=enc.tobytes()))
    np.testing.assert_array_equal(out[..., 0], to_8bit(deep))
    bgra = RNG.integers(0, 256, size=(5, 7, 4), dtype=np.uint8)
    _, enc = cv2.imencode(".png", bgra)
    out = compressed_to_array(SimpleNamespace(format="png", data=array.array("B", enc.tobytes())))
    np.testing.assert_array_equal(out, bgra[..., [2, 1, 0]])


def test_compressed_size_reads_headers() -> None:
    rgb = smooth_image(30, 50)
    ok, progressive = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    jpeg = array_to_compressed_fields(rgb, "jpeg")["data"]
    # An APP15 segment before the frame header (with a fake SOF marker inside it).
    app = b"\xff\xc0" + bytes(40)
    padded = jpeg[:2] + b"\xff\xef" + struct.pack(">H", len(app) + 2) + app + jpeg[2:]
    assert compressed_size(jpeg) == ("jpeg", 50, 30)
    assert compressed_size(progressive.tobytes()) == ("jpeg", 50, 30)
    assert compressed_size(padded) == ("jpeg", 50, 30)
    assert compressed_size(array_to_compressed_fields(rgb, "png")["data"]) == ("png", 50, 30)
    assert compressed_size(make_png(123, 45)) == ("png", 123, 45)
    np.testing.assert_array_equal(
        compressed_to_array(SimpleNamespace(format="jpeg", data=padded)),
        compressed_to_array(SimpleNamespace(format="jpeg", data=jpeg)),
    )


def test_trailing_bytes_are_tolerated_and_thumbnail_eoi_does_not_hide_truncation() -> None:
    rgb = smooth_image()
    jpeg = array_to_compressed_fields(rgb, "jpeg")["data"]
    png = array_to_compressed_fields(rgb, "png")["data"]
    reference = compressed_to_array(SimpleNamespace(format="jpeg", data=jpeg))
    padded = compressed_to_array(SimpleNamespace(format="jpeg", data=jpeg + bytes(500)))
    np.testing.assert_array_equal(padded, reference)
    np.testing.assert_array_equal(
        compressed_to_array(SimpleNamespace(format="png", data=png + bytes(500))), rgb
    )
    # An APP1 segment holding a small JPEG (with its own EOI) before the frame header.
    thumb = array_to_compressed_fields(smooth_image(8, 8), "jpeg", quality=50)["data"]
    app1 = b"Exif\x00\x00" + thumb
    with_thumb = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]
    assert compressed_size(with_thumb) == ("jpeg", 64, 48)
    np.testing.assert_array_equal(
        compressed_to_array(SimpleNamespace(format="jpeg", data=with_thumb)), reference
    )
    truncated = with_thumb[: len(with_thumb) - len(jpeg) // 2]
    with pytest.raises(ImageError, match="jpeg truncated") as info:
        compressed_to_array(SimpleNamespace(format="jpeg", data=truncated))
    assert info.value.cause == "corrupt_compressed"


def test_handmade_png_decodes() -> None:
    data = make_png(9, 4, row_source=lambda r: bytes([0]) + bytes(range(r * 10, r * 10 + 9)))
    out = compressed_to_array(SimpleNamespace(format="png", data=data))
    np.testing.assert_array_equal(out[..., 1], np.arange(9)[None, :] + 10 * np.arange(4)[:, None])


BOMB_CHECK = """
import sys
from types import SimpleNamespace
import cv2, numpy as np
from rvm_ros.imaging import ImageError, compressed_to_array
bomb = open(sys.argv[1], "rb").read()

def rss():  # peak RSS of this process image in kB (ru_maxrss would include the parent's)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
before = rss()
try:
    compressed_to_array(SimpleNamespace(format="png", data=bomb))
    print("accepted")
except ImageError as exc:
    print(exc.cause)
guarded = rss() - before
decoded = cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_UNCHANGED)  # control
print(guarded, rss() - before, decoded.shape)
"""


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    # 20000 x 20000 grey zeros: ~400 MB decoded, a few hundred kB compressed.
    bomb = make_png(20000, 20000)
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    with pytest.raises(ImageError) as info:
        compressed_to_array(SimpleNamespace(format="png", data=bomb))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert info.value.cause == "too_large"
    assert "width 20000 x height 20000 = 400000000 pixels exceeds max_image_pixels" in str(
        info.value
    )
    assert peak < 4 * len(bomb)  # Python/numpy: at most a few copies of the compressed data
    # OpenCV's allocations are invisible to tracemalloc: measure the peak RSS of a fresh
    # process, with decoding the same bomb directly as the control.
    if not Path("/proc/self/status").is_file():
        pytest.skip("peak RSS is read from /proc/self/status (Linux only)")
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    run = subprocess.run(
        [sys.executable, "-c", BOMB_CHECK, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    verdict, numbers = run.stdout.split("\n")[:2]
    guarded_kb, control_kb, shape = numbers.split(" ", 2)
    assert verdict == "too_large"
    assert shape == "(20000, 20000)"
    assert int(control_kb) > 300_000  # the control really allocates the decoded image
    assert int(guarded_kb) < 20_000  # the guarded call did not


def test_jpeg_declaring_a_huge_frame_is_refused() -> None:
    jpeg = bytearray(array_to_compressed_fields(smooth_image(), "jpeg")["data"])
    sof = max(jpeg.find(b"\xff\xc0"), jpeg.find(b"\xff\xc2"))
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    with pytest.raises(ImageError, match="width 60000 x height 60000") as info:
        compressed_to_array(SimpleNamespace(format="jpeg", data=bytes(jpeg)))
    assert info.value.cause == "too_large"


@pytest.mark.parametrize(
    ("fmt_string", "data", "cause", "message"),
    [
        ("jpeg", b"", "corrupt_compressed", "CompressedImage.data is empty (format 'jpeg')"),
        ("jpeg", b"hello world", "corrupt_compressed", "is neither JPEG nor PNG"),
        (
            "tiff",
            b"II*\x00",
            "unsupported_format",
            "CompressedImage.format 'tiff' is not supported",
        ),
        (
            "32FC1; compressedDepth png",
            b"\x89PNG",
            "unsupported_format",
            "compressedDepth images are not supported",
        ),
        ("png", "JPEG", "corrupt_compressed", "format 'png' says png but the data is jpeg"),
        ("jpeg", "JPEG_TRUNCATED", "corrupt_compressed", "jpeg truncated (no end-of-image marker)"),
        ("png", "PNG_TRUNCATED", "corrupt_compressed", "png truncated (no IEND chunk)"),
        ("png", "PNG_BAD_IDAT", "corrupt_compressed", "png data cannot be decoded"),
        ("png", "PNG_ZERO_WIDTH", "empty", "CompressedImage is empty: width 0, height 4"),
        ("png", b"\x89PNG\r\n\x1a\n" + bytes(30), "corrupt_compressed", "IHDR"),
        ("jpeg", b"\xff\xd8\xff\xda\x00\x02", "corrupt_compressed", "no start-of-frame header"),
        ("jpeg", b"\xff\xd8\x00", "corrupt_compressed", "expected a marker at byte 2"),
        ("jpeg", 3.5, "invalid_field", "CompressedImage.data must be bytes"),
    ],
)
def test_compressed_errors(fmt_string: str, data: Any, cause: str, message: str) -> None:
    jpeg = array_to_compressed_fields(smooth_image(), "jpeg")["data"]
    png = array_to_compressed_fields(smooth_image(), "png")["data"]
    named = {
        "JPEG": jpeg,
        "JPEG_TRUNCATED": jpeg[: len(jpeg) // 2],
        "PNG_TRUNCATED": png[: len(png) // 2],
        "PNG_BAD_IDAT": png[:40] + bytes(b ^ 0x5A for b in png[40:-12]) + png[-12:],
        "PNG_ZERO_WIDTH": make_png(0, 4),
    }
    if isinstance(data, str):
        data = named[data]
    with pytest.raises(ImageError) as info:
        compressed_to_array(SimpleNamespace(format=fmt_string, data=data))
    assert info.value.cause == cause
    assert message in str(info.value)


def test_non_string_format_is_named() -> None:
    with pytest.raises(ImageError, match=r"CompressedImage\.format must be a string, got int"):
        compressed_to_array(SimpleNamespace(format=3, data=b"x"))


# --- fuzzing ------------------------------------------------------------------------------

ENCODINGS_FOR_FUZZ = [*SUPPORTED_ENCODINGS, "RGB8", "8UC2", "", "rgb8\x00", "mono12"]
FUZZ_LIMIT = 4096  # max_image_pixels for the fuzzers


def bytes_per_pixel(encoding: str) -> int:
    """Independent table of bytes per pixel (0 for names that are no encoding)."""
    key = encoding.strip().lower()
    for name, (channels, dtype, _) in PLAIN.items():
        if name.lower() == key:
            return channels * np.dtype(dtype).itemsize
    if key.startswith("bayer_"):
        return 1
    if key in ("yuv422", "yuv422_yuy2", "uyvy", "yuyv"):
        return 2
    return 0


@st.composite
def raw_images(draw: st.DrawFn) -> SimpleNamespace:
    encoding = draw(st.sampled_from(ENCODINGS_FOR_FUZZ))
    if draw(st.booleans()):
        # Plausible: small sizes, step from the encoding, payload mostly the right length.
        height, width = draw(st.integers(0, 12)), draw(st.integers(0, 12))
        step = width * (bytes_per_pixel(encoding) or 3) + draw(st.sampled_from([0, 0, 1, 5]))
        length = step * height + draw(st.sampled_from([0, 0, 0, -1, 1]))
    else:
        # Hostile: any 32-bit sizes and steps, payload of any (small) length.
        height = draw(st.one_of(st.integers(0, 12), st.integers(0, 2**32 - 1)))
        width = draw(st.one_of(st.integers(0, 12), st.integers(0, 2**32 - 1)))
        step = draw(st.one_of(st.integers(0, 200), st.integers(0, 2**32 - 1)))
        length = draw(st.integers(0, 2_000))
    length = max(0, length)
    payload = draw(st.binary(min_size=length, max_size=length))
    container = draw(st.sampled_from(["bytes", "array", "ndarray", "list"]))
    data: Any = {
        "bytes": payload,
        "array": array.array("B", payload),
        "ndarray": np.frombuffer(payload, np.uint8),
        "list": list(payload),
    }[container]
    big = draw(st.sampled_from([0, 1, True, False]))
    return SimpleNamespace(
        height=height, width=width, encoding=encoding, is_bigendian=big, step=step, data=data
    )


def reference_if_plain(msg: SimpleNamespace) -> np.ndarray | None:
    """Expected output for the encodings of PLAIN (rebuilt from the payload), else None."""
    names = {k.lower(): k for k in PLAIN}
    key = names.get(msg.encoding.strip().lower())
    if key is None:
        return None
    channels, dtype, how = PLAIN[key]
    item = np.dtype(dtype).itemsize
    raw = bytes(bytearray(msg.data))
    rows = [
        raw[r * msg.step : r * msg.step + msg.width * channels * item] for r in range(msg.height)
    ]
    wire = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    values = np.frombuffer(b"".join(rows), dtype=wire).reshape(msg.height, msg.width, channels)
    return expected_rgb(values.astype(dtype), how)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_images())
def test_fuzz_image_to_array(msg: SimpleNamespace) -> None:
    tracemalloc.start()
    try:
        out = image_to_array(msg, max_image_pixels=FUZZ_LIMIT)
    except ImageError as exc:
        assert exc.cause in {
            "invalid_field",
            "unknown_encoding",
            "size_mismatch",
            "empty",
            "too_large",
        }
        assert str(exc)
        out = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    # Never more than a few times the largest acceptable image (4096 px x 3 x 4 bytes).
    assert peak < 1_000_000
    if out is None:
        return
    assert msg.width * msg.height <= FUZZ_LIMIT
    assert len(msg.data) == msg.step * msg.height
    assert msg.step >= msg.width * bytes_per_pixel(msg.encoding)
    assert out.shape == (msg.height, msg.width, 3)
    expected = reference_if_plain(msg)
    if expected is not None:
        assert out.dtype == expected.dtype
        np.testing.assert_array_equal(out, expected)
    else:
        assert out.dtype == np.uint8


@st.composite
def compressed_blobs(draw: st.DrawFn) -> bytes:
    base = draw(
        st.sampled_from(
            [
                array_to_compressed_fields(smooth_image(12, 16), "jpeg")["data"],
                array_to_compressed_fields(smooth_image(12, 16), "png")["data"],
                make_png(5, 3),
                b"",
            ]
        )
    )
    kind = draw(st.sampled_from(["random", "flip", "truncate", "header", "as_is"]))
    if kind == "random" or not base:
        return draw(st.binary(max_size=300))
    blob = bytearray(base)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            pos = draw(st.integers(0, len(blob) - 1))
            blob[pos] = draw(st.integers(0, 255))
    elif kind == "truncate":
        blob = blob[: draw(st.integers(0, len(blob)))]
    elif kind == "header":
        # Random dimensions in the header (PNG IHDR / first JPEG SOF).
        dims = struct.pack(">II", draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)))
        if blob.startswith(b"\x89PNG"):
            blob[16:24] = dims
        else:
            sof = blob.find(b"\xff\xc0")
            blob[sof + 5 : sof + 9] = dims[:2] + dims[4:6]
    return bytes(blob)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compressed_blobs(), st.sampled_from(["jpeg", "png", "", "rgb8; jpeg compressed bgr8"]))
def test_fuzz_compressed_to_array(blob: bytes, fmt_string: str) -> None:
    try:
        out = compressed_to_array(SimpleNamespace(format=fmt_string, data=blob), FUZZ_LIMIT)
    except ImageError as exc:
        assert exc.cause in {"corrupt_compressed", "unsupported_format", "empty", "too_large"}
        return
    _, width, height = compressed_size(blob)
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    assert width * height <= FUZZ_LIMIT


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_images(), st.booleans())
def test_fuzz_raw_cdr_path_agrees(msg: SimpleNamespace, little_endian: bool) -> None:
    """The fuzzed messages, serialised (rosbags, either CDR byte order) and decoded by the
    node's raw path (rvm_ros.imaging.cdr), give what image_to_array gives on the fields."""
    from rosbags.typesys import Stores, get_typestore

    from rvm_ros.imaging.cdr import parse_image_cdr

    store = get_typestore(Stores.ROS2_KILTED)
    types = store.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="f"
    )
    payload = bytes(bytearray(msg.data))
    ros_msg = types["sensor_msgs/msg/Image"](
        header=header,
        height=msg.height,
        width=msg.width,
        encoding=msg.encoding.replace("\x00", ""),
        is_bigendian=int(msg.is_bigendian),
        step=msg.step,
        data=np.frombuffer(payload, np.uint8),
    )
    serialized = bytes(
        store.serialize_cdr(ros_msg, "sensor_msgs/msg/Image", little_endian=little_endian)
    )
    raw = parse_image_cdr(serialized)
    fields = SimpleNamespace(
        height=msg.height,
        width=msg.width,
        encoding=msg.encoding.replace("\x00", ""),
        is_bigendian=int(msg.is_bigendian),
        step=msg.step,
        data=payload,
    )
    outcomes = []
    for source in (fields, raw):
        try:
            outcomes.append(("ok", image_to_array(source, max_image_pixels=FUZZ_LIMIT)))
        except ImageError as exc:
            outcomes.append(("error", exc.cause))
    (kind_a, a), (kind_b, b) = outcomes
    assert kind_a == kind_b
    if kind_a == "ok":
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b
