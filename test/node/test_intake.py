"""The node's intake of one message (parse, decode, publishable header) and its parameter
change check, without a running node (issue 25 split them out of ``node.py``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from rvm_ros.imaging.cdr import RawCompressedImage, RawImage
from rvm_ros.imaging.decode import ImageError
from rvm_ros.imaging.encode import array_to_compressed_fields
from rvm_ros.node.intake import decode_image, parse_image, ros_header
from rvm_ros.node.parameters import refuse_change
from rvm_ros.stamps import header_ns


def _image(rgb: np.ndarray, sec: int, nanosec: int) -> Image:
    msg = Image()
    msg.header.frame_id = "cam"
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding, msg.step = "rgb8", rgb.shape[1] * 3
    msg.data = rgb.tobytes()
    return msg


def _compressed(rgb: np.ndarray, sec: int, nanosec: int) -> CompressedImage:
    msg = CompressedImage()
    msg.header.frame_id = "cam"
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    fields = array_to_compressed_fields(rgb, "png")
    msg.format, msg.data = fields["format"], fields["data"]
    return msg


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "compressed"])
@pytest.mark.parametrize("serialized", [False, True], ids=["message", "cdr"])
def test_a_message_and_its_cdr_bytes_give_one_frame(compressed: bool, serialized: bool) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    msg = _compressed(rgb, 12, 345) if compressed else _image(rgb, 12, 345)
    given = serialize_message(msg) if serialized else msg
    parsed = parse_image(given, compressed)
    if serialized:
        assert isinstance(parsed, RawCompressedImage if compressed else RawImage)
    else:
        assert parsed is msg
    assert np.array_equal(decode_image(parsed, compressed, 10_000), rgb)
    header = ros_header(parsed.header)
    assert isinstance(header, Header)
    assert header.frame_id == "cam"
    assert header_ns(header) == 12 * 1_000_000_000 + 345
    if not serialized:
        assert header is msg.header  # a Header already: the same object


def test_decode_refuses_an_image_over_the_pixel_limit() -> None:
    msg = _image(np.zeros((6, 8, 3), np.uint8), 0, 0)
    with pytest.raises(ImageError):
        decode_image(msg, False, 47)


def test_truncated_cdr_bytes_are_an_image_error() -> None:
    data = serialize_message(_image(np.zeros((6, 8, 3), np.uint8), 0, 0))
    with pytest.raises(ImageError):
        parse_image(data[:20], False)


def test_changes_are_refused_once_configured_and_checked_before() -> None:
    grid = [Parameter("track_grid", value=4)]
    assert refuse_change("unconfigured", grid) is None
    why = refuse_change("active", grid)
    assert why is not None and "'track_grid'" in why and "while it is active" in why
    bad = refuse_change("unconfigured", [Parameter("track_grid", value=-1)])
    assert bad == "invalid parameter 'track_grid': must be >= 0, got -1"
    # rclpy's own use_sim_time may change at any time
    assert refuse_change("active", [Parameter("use_sim_time", value=True)]) is None
