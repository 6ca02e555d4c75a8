"""Images: ROS image messages to arrays and back, compressed images, model preprocessing.

:mod:`.image_msg` (``sensor_msgs/Image`` -> RGB), :mod:`.compressed` (``CompressedImage``),
:mod:`.encode` (arrays -> message fields), :mod:`.preprocess` (resize geometry to the
model input), :mod:`.video` (video files and ``.npy`` frames), :mod:`.synthetic`
(deterministic test frames).
"""

from __future__ import annotations

from rvm_ros.imaging.compressed import compressed_size, compressed_to_array
from rvm_ros.imaging.encode import array_to_compressed_fields, array_to_image_fields
from rvm_ros.imaging.image_msg import (
    DEFAULT_MAX_IMAGE_PIXELS,
    SUPPORTED_ENCODINGS,
    ImageError,
    image_to_array,
)

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "SUPPORTED_ENCODINGS",
    "ImageError",
    "array_to_compressed_fields",
    "array_to_image_fields",
    "compressed_size",
    "compressed_to_array",
    "image_to_array",
]
