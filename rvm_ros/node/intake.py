"""A camera message on its way into the node: parsed, decoded, and given a publishable header.

Pure functions of the executor thread's image callback (`rvm_ros.node.node.RvmNode.on_image`):
a raw subscription hands the serialized CDR bytes, which `rvm_ros.imaging.cdr` views
without rclpy's deserialisation copy; an ordinary one hands the message.
"""

from __future__ import annotations

from typing import TypeAlias, Union

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from rvm_ros.imaging.cdr import (
    CdrHeader,
    RawCompressedImage,
    RawImage,
    parse_compressed_image_cdr,
    parse_image_cdr,
)

__all__ = ["ImageMessage", "decode_image", "parse_image", "ros_header"]

#: An image message as the callback works with it: rclpy's, or a view of its CDR bytes.
ImageMessage: TypeAlias = Union[Image, CompressedImage, RawImage, RawCompressedImage]  # noqa: UP007


def parse_image(msg: Image | CompressedImage | bytes, compressed: bool) -> ImageMessage:
    """The message itself, or a view of the serialized ``msg`` (raw subscriptions).

    Raises:
        rvm_ros.imaging.decode.ImageError: malformed CDR bytes.
    """
    if isinstance(msg, bytes):
        return parse_compressed_image_cdr(msg) if compressed else parse_image_cdr(msg)
    return msg


def decode_image(msg: ImageMessage, compressed: bool, max_image_pixels: int) -> np.ndarray:
    """The message's pixels as an RGB array (`rvm_ros.imaging` decoders).

    Raises:
        rvm_ros.imaging.decode.ImageError: an image that cannot be used (the ``cause`` says
            why).
    """
    from rvm_ros.imaging.compressed import compressed_to_array
    from rvm_ros.imaging.decode import image_to_array

    if compressed:
        return compressed_to_array(msg, max_image_pixels)
    return image_to_array(msg, max_image_pixels)


def ros_header(header: Header | CdrHeader) -> Header:
    """A ``std_msgs/Header`` for the publishers (the same object when it is one already)."""
    if isinstance(header, Header):
        return header
    out = Header(frame_id=header.frame_id)
    out.stamp.sec, out.stamp.nanosec = header.stamp.sec, header.stamp.nanosec
    return out
