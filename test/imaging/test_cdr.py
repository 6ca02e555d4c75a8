"""The raw (CDR) image decoder (rvm_ros.imaging.cdr) against the ordinary path.

The ordinary path is what the node does without raw subscriptions: rclpy deserialises
the serialized bytes into a ``sensor_msgs`` message and ``image_to_array`` /
``compressed_to_array`` convert it. Here random messages are serialised with rclpy
(``rclpy.serialization.serialize_message``), decoded both ways and compared field by
field and array by array. Big-endian encapsulation (which rclpy never writes) is made
with rosbags' independent serializer. Malformed byte strings are fuzzed with hypothesis.
"""

from __future__ import annotations

import tracemalloc
import zlib
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rvm_ros.imaging.cdr import (
    CDR_CAUSES,
    CdrError,
    parse_compressed_image_cdr,
    parse_image_cdr,
)
from rvm_ros.imaging.compressed import compressed_to_array
from rvm_ros.imaging.image_msg import SUPPORTED_ENCODINGS, ImageError, image_to_array

pytest.importorskip("rclpy")
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image

pytestmark = pytest.mark.ros

LIMIT = 1 << 16  # max_image_pixels for these small images
BYTES_PER_PIXEL = {
    **{e: 1 for e in SUPPORTED_ENCODINGS if e.startswith("bayer_")},
    **{e: 2 for e in ("yuv422", "yuv422_yuy2", "uyvy", "yuyv")},
    "rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1,
    "rgb16": 6, "bgr16": 6, "rgba16": 8, "bgra16": 8, "mono16": 2,
    "8uc1": 1, "8uc3": 3, "8uc4": 4, "16uc1": 2, "16uc3": 6, "16uc4": 8,
    "32fc1": 4, "32fc3": 12, "32fc4": 16,
}  # fmt: skip
YUV = ("yuv422", "yuv422_yuy2", "uyvy", "yuyv")
FRAME_IDS = ["", "a", "cam", "front_", "optical7", "kamera_ünï", "日本語カメラ", "x" * 33]


def _random_image(rng: np.random.Generator, encoding: str) -> Image:
    msg = Image()
    msg.header.stamp.sec = int(rng.integers(-(2**31), 2**31))
    msg.header.stamp.nanosec = int(rng.integers(0, 2**32))
    msg.header.frame_id = FRAME_IDS[int(rng.integers(len(FRAME_IDS)))]
    msg.height = int(rng.integers(0, 8))
    width = int(rng.integers(0, 9))
    if encoding in YUV and rng.random() < 0.75:
        width -= width % 2  # YUV 4:2:2 needs an even width (odd ones are rejected)
    msg.width = width
    # Message encodings as drivers spell them (the generic ones upper case).
    msg.encoding = encoding.upper() if encoding[0].isdigit() else encoding
    msg.is_bigendian = int(rng.integers(0, 2))
    msg.step = width * BYTES_PER_PIXEL[encoding] + int(rng.choice([0, 0, 1, 3, 8]))
    length = msg.step * msg.height + int(rng.choice([0, 0, 0, 0, -1, 1]))
    msg.data = rng.integers(0, 256, max(length, 0), dtype=np.uint8).tobytes()
    return msg


def _outcome(fn: Any, msg: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(msg, LIMIT)
    except ImageError as exc:
        return "error", exc.cause


def _assert_same_outcome(ordinary: tuple[str, Any], raw: tuple[str, Any]) -> None:
    assert ordinary[0] == raw[0], (ordinary, raw)
    if ordinary[0] == "error":
        assert ordinary[1] == raw[1]
        return
    a, b = ordinary[1], raw[1]
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)  # NaN positions must agree too


def _assert_same_header(msg: Any, raw: Any) -> None:
    assert raw.header.stamp.sec == msg.header.stamp.sec
    assert raw.header.stamp.nanosec == msg.header.stamp.nanosec
    assert raw.header.frame_id == msg.header.frame_id


def test_every_encoding_is_covered_by_the_table() -> None:
    assert set(BYTES_PER_PIXEL) == set(SUPPORTED_ENCODINGS)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_raw_image_matches_the_ordinary_path(encoding: str) -> None:
    rng = np.random.default_rng(zlib.crc32(encoding.encode()))
    converted = 0
    for _ in range(12):
        sent = _random_image(rng, encoding)
        payload = serialize_message(sent)
        ordinary = deserialize_message(payload, Image)
        raw = parse_image_cdr(payload)
        _assert_same_header(ordinary, raw)
        for name in ("height", "width", "encoding", "is_bigendian", "step"):
            assert getattr(raw, name) == getattr(ordinary, name), name
        assert raw.data.dtype == np.uint8 and raw.data.tobytes() == bytes(ordinary.data)
        assert raw.data.size == 0 or np.shares_memory(raw.data, np.frombuffer(payload, np.uint8))
        assert not raw.data.flags.writeable
        outcome = _outcome(image_to_array, ordinary)
        _assert_same_outcome(outcome, _outcome(image_to_array, raw))
        converted += outcome[0] == "ok"
    assert converted >= 3  # not only rejections


@pytest.mark.parametrize("frame_id_len", range(9))
@pytest.mark.parametrize("encoding_len", [4, 5, 6, 7])
def test_every_string_padding_is_aligned(frame_id_len: int, encoding_len: int) -> None:
    # frame_id and encoding lengths 1..9 (NUL included) hit every 4-byte alignment offset.
    encoding = {4: "bgr8", 5: "mono8", 6: "mono16", 7: "bgra16"}[encoding_len]
    sent = Image()
    sent.header.frame_id = "f" * frame_id_len
    sent.height, sent.width, sent.encoding = 3, 5, encoding
    sent.step = 5 * BYTES_PER_PIXEL[encoding] + 1
    sent.data = bytes(range(sent.step * 3))
    raw = parse_image_cdr(serialize_message(sent))
    assert (raw.header.frame_id, raw.encoding, raw.step) == (
        "f" * frame_id_len,
        encoding,
        sent.step,
    )
    assert raw.data.tobytes() == bytes(sent.data)


def _png(rng: np.random.Generator, h: int, w: int, channels: int, depth: Any) -> bytes:
    top = 256 if depth == np.uint8 else 65536
    img = rng.integers(0, top, (h, w, channels) if channels > 1 else (h, w), dtype=depth)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf.tobytes())


def _jpeg(rng: np.random.Generator, h: int, w: int) -> bytes:
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return bytes(buf.tobytes())


@pytest.mark.parametrize(
    "fmt", ["jpeg", "png", "rgb8; jpeg compressed bgr8", "bgr8; png compressed ", ""]
)
def test_raw_compressed_image_matches_the_ordinary_path(fmt: str) -> None:
    rng = np.random.default_rng(len(fmt))
    blobs = [b"", b"\x00" * 5]
    for h, w in [(1, 1), (3, 7), (16, 9), (31, 2)]:
        blobs.append(_jpeg(rng, h, w))
        blobs.append(_png(rng, h, w, 1, np.uint8))
        blobs.append(_png(rng, h, w, 4, np.uint8))
        blobs.append(_png(rng, h, w, 3, np.uint16))
    blobs.append(blobs[-1][: len(blobs[-1]) // 2])  # truncated
    for i, blob in enumerate(blobs):
        sent = CompressedImage()
        sent.header.stamp.sec, sent.header.stamp.nanosec = i - 3, 999_999_999 - i
        sent.header.frame_id = FRAME_IDS[i % len(FRAME_IDS)]
        sent.format = fmt
        sent.data = blob
        payload = serialize_message(sent)
        ordinary = deserialize_message(payload, CompressedImage)
        raw = parse_compressed_image_cdr(payload)
        _assert_same_header(ordinary, raw)
        assert raw.format == ordinary.format
        assert raw.data.tobytes() == bytes(ordinary.data)
        _assert_same_outcome(
            _outcome(compressed_to_array, ordinary), _outcome(compressed_to_array, raw)
        )


def _rosbags_image(store: Any, sent: Image) -> Any:
    types = store.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](
            sec=sent.header.stamp.sec, nanosec=sent.header.stamp.nanosec
        ),
        frame_id=sent.header.frame_id,
    )
    return types["sensor_msgs/msg/Image"](
        header=header,
        height=sent.height,
        width=sent.width,
        encoding=sent.encoding,
        is_bigendian=sent.is_bigendian,
        step=sent.step,
        data=np.frombuffer(bytes(sent.data), np.uint8),
    )


@pytest.mark.parametrize("little_endian", [False, True])
def test_both_encapsulation_endiannesses(little_endian: bool) -> None:
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    rng = np.random.default_rng(7)
    for encoding in ("bgr8", "mono16", "32fc3", "yuv422"):
        sent = _random_image(rng, encoding)
        be = bytes(store.serialize_cdr(_rosbags_image(store, sent), "sensor_msgs/msg/Image",
                                       little_endian=little_endian))  # fmt: skip
        assert be[1] == int(little_endian)
        raw = parse_image_cdr(be)
        reference = parse_image_cdr(serialize_message(sent))  # rclpy: little endian
        assert raw.header == reference.header
        for name in ("height", "width", "encoding", "is_bigendian", "step"):
            assert getattr(raw, name) == getattr(reference, name)
        assert raw.data.tobytes() == reference.data.tobytes()
        # XCDR2 plain encapsulation (0x0006 / 0x0007) lays these types out the same way.
        xcdr2 = bytes([0, 6 + int(little_endian)]) + be[2:]
        again = parse_image_cdr(xcdr2)
        assert (again.header, again.step, again.encoding) == (raw.header, raw.step, raw.encoding)
        assert again.data.tobytes() == raw.data.tobytes()


def _valid_payload() -> bytes:
    sent = Image()
    sent.header.stamp.sec, sent.header.stamp.nanosec = 12, 34
    sent.header.frame_id = "cam"
    sent.height, sent.width, sent.encoding, sent.step = 2, 3, "rgb8", 9
    sent.data = bytes(range(18))
    return bytes(serialize_message(sent))


def _set_u32(payload: bytes, pos: int, value: int) -> bytes:
    return payload[:pos] + value.to_bytes(4, "little") + payload[pos + 4 :]


# Offsets in _valid_payload(): 4 stamp, 12 frame_id length, 20 height, 24 width,
# 28 encoding length, 37 is_bigendian, 40 step, 44 data length, 48 data.
@pytest.mark.parametrize(
    ("mutate", "cause", "text"),
    [
        (lambda p: b"", "cdr_encapsulation", "fewer than the 4-byte"),
        (lambda p: b"\x01\x00" + p[2:], "cdr_encapsulation", "unsupported CDR encapsulation"),
        (lambda p: b"\x00\x02" + p[2:], "cdr_encapsulation", "unsupported CDR encapsulation"),
        (lambda p: p[:10], "cdr_truncated", "inside header.stamp"),
        (lambda p: p[:22], "cdr_truncated", "inside height/width"),
        (lambda p: p[:37], "cdr_truncated", "inside is_bigendian"),
        (lambda p: p[:47], "cdr_truncated", "inside the length of data"),
        (lambda p: p[:-1], "cdr_length", "data declares 18 bytes but only 17 remain"),
        (lambda p: _set_u32(p, 12, 2**32 - 1), "cdr_length", "header.frame_id declares"),
        (lambda p: _set_u32(p, 28, 1 << 31), "cdr_length", "encoding declares"),
        (lambda p: _set_u32(p, 44, 2**32 - 1), "cdr_length", "data declares 4294967295"),
        (lambda p: p + b"\x00" * 4, "cdr_trailing", "4 bytes after its last field"),
    ],
)
def test_malformed_payloads_are_rejected_with_a_cause(mutate: Any, cause: str, text: str) -> None:
    with pytest.raises(CdrError) as info:
        parse_image_cdr(mutate(_valid_payload()))
    assert info.value.cause == cause and isinstance(info.value, ImageError)
    assert text in str(info.value)


def test_alignment_padding_at_the_end_is_accepted() -> None:
    raw = parse_image_cdr(_valid_payload() + b"\x00\x00")
    assert raw.data.tobytes() == bytes(range(18))


@st.composite
def mutated_payloads(draw: st.DrawFn) -> bytes:
    encoding = draw(st.sampled_from(["bgr8", "mono16", "32fc1", "bayer_rggb8", "yuyv"]))
    sent = _random_image(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), encoding)
    payload = bytearray(serialize_message(sent))
    kind = draw(st.sampled_from(["random", "truncate", "flip", "length", "append"]))
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "truncate":
        return bytes(payload[: draw(st.integers(0, len(payload)))])
    if kind == "flip":
        for _ in range(draw(st.integers(1, 6))):
            payload[draw(st.integers(0, len(payload) - 1))] = draw(st.integers(0, 255))
    elif kind == "length":
        # An absurd or off-by-some value at any aligned position (lengths, sizes, step).
        pos = 4 + 4 * draw(st.integers(0, max(0, (len(payload) - 8) // 4)))
        value = draw(st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)))
        payload[pos : pos + 4] = value.to_bytes(4, draw(st.sampled_from(["little", "big"])))
    else:
        payload += draw(st.binary(max_size=16))
    return bytes(payload)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payloads(), st.booleans())
def test_fuzz_raw_decoder(payload: bytes, compressed: bool) -> None:
    tracemalloc.start()
    try:
        try:
            if compressed:
                raw: Any = parse_compressed_image_cdr(payload)
                fn: Any = compressed_to_array
            else:
                raw = parse_image_cdr(payload)
                fn = image_to_array
        except CdrError as exc:
            assert exc.cause in CDR_CAUSES and str(exc)
            return
        assert np.shares_memory(raw.data, np.frombuffer(payload, np.uint8)) or raw.data.size == 0
        try:
            fn(raw, 4096)
        except ImageError as exc:
            assert exc.cause and str(exc)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 1_000_000  # nothing proportional to a declared (absurd) length
