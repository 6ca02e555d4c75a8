"""Conversion between ROS image messages and numpy arrays (no cv_bridge needed).

The functions here work on any object carrying the fields of ``sensor_msgs/Image``
(``height, width, encoding, is_bigendian, step, data``) or ``sensor_msgs/CompressedImage``
(``format, data``): rclpy messages (``data`` is an ``array.array('B')``), rosbags messages
(``data`` is a ``np.ndarray``), plain namespaces with ``bytes`` or lists.

Every conversion returns an RGB array ``[H, W, 3]``: ``uint8`` for integer encodings
(16-bit values scaled as cv_bridge does, ``round(value * 255 / 65535)``) and ``float32`` clipped to
``[0, 1]`` (NaN preserved) for ``32FC1`` / ``32FC3`` / ``32FC4``. Anything wrong with a
message raises :class:`ImageError` whose ``cause`` is a short stable key (for diagnostics)
and whose message names the offending field and values. Sizes are checked against
``max_image_pixels`` before anything proportional to the image is allocated, so a hostile
header (or a compressed "decompression bomb") cannot make the caller allocate memory.

Encodings follow the ROS ``sensor_msgs/image_encodings`` names. The OpenCV-style generic
encodings follow cv_bridge's reading: ``8UC3`` / ``16UC3`` / ``32FC3`` hold BGR,
``8UC4`` / ``16UC4`` / ``32FC4`` hold BGRA, one-channel types are grey.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from rvm_ros.errors import RvmRosError

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "SUPPORTED_ENCODINGS",
    "ImageError",
    "check_image_size",
    "data_bytes",
    "data_length",
    "image_to_array",
    "message_field",
    "to_8bit",
]

#: Default bound on ``width * height`` of an incoming image (8192 x 4096).
DEFAULT_MAX_IMAGE_PIXELS = 8192 * 4096


class ImageError(RvmRosError, ValueError):
    """An image message that cannot be converted.

    Attributes:
        cause: Short stable key for diagnostics: ``invalid_field``, ``unknown_encoding``,
            ``size_mismatch``, ``empty``, ``too_large``, ``corrupt_compressed``,
            ``unsupported_format`` (and ``geometry_mismatch`` from
            :mod:`rvm_ros.imaging.preprocess`).
    """

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause

    def __reduce__(self) -> tuple[type[ImageError], tuple[str, str]]:
        return (type(self), (self.cause, str(self)))


@dataclass(frozen=True)
class _Encoding:
    """How the bytes of one raw encoding are laid out and turned into RGB."""

    channels: int  # values per pixel in the message
    depth: int  # bytes per value: 1, 2 (unsigned) or 4 (float32)
    order: str  # "rgb", "bgr", "rgba", "bgra", "gray", "bayer_XXXX", "uyvy", "yuyv"

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.depth


def _build_encodings() -> dict[str, _Encoding]:
    table: dict[str, _Encoding] = {
        "rgb8": _Encoding(3, 1, "rgb"),
        "bgr8": _Encoding(3, 1, "bgr"),
        "rgba8": _Encoding(4, 1, "rgba"),
        "bgra8": _Encoding(4, 1, "bgra"),
        "mono8": _Encoding(1, 1, "gray"),
        "rgb16": _Encoding(3, 2, "rgb"),
        "bgr16": _Encoding(3, 2, "bgr"),
        "rgba16": _Encoding(4, 2, "rgba"),
        "bgra16": _Encoding(4, 2, "bgra"),
        "mono16": _Encoding(1, 2, "gray"),
        # YUV 4:2:2, two bytes per pixel: "yuv422" is UYVY, "yuv422_yuy2" is YUYV.
        "yuv422": _Encoding(2, 1, "uyvy"),
        "uyvy": _Encoding(2, 1, "uyvy"),
        "yuv422_yuy2": _Encoding(2, 1, "yuyv"),
        "yuyv": _Encoding(2, 1, "yuyv"),
    }
    for pattern in ("rggb", "bggr", "gbrg", "grbg"):
        table[f"bayer_{pattern}8"] = _Encoding(1, 1, f"bayer_{pattern}")
    generic_order = {1: "gray", 3: "bgr", 4: "bgra"}
    for channels, order in generic_order.items():
        table[f"8uc{channels}"] = _Encoding(channels, 1, order)
        table[f"16uc{channels}"] = _Encoding(channels, 2, order)
        table[f"32fc{channels}"] = _Encoding(channels, 4, order)
    return table


_ENCODINGS = _build_encodings()

#: Encodings :func:`image_to_array` understands (lower case; matching ignores case).
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(sorted(_ENCODINGS))

# OpenCV's Bayer names describe the second row, so ROS "rggb" is OpenCV "BG".
_BAYER_CODES = {
    "bayer_rggb": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg": cv2.COLOR_BayerGB2RGB,
}
_TO_RGB_CODES = {
    "rgba": cv2.COLOR_RGBA2RGB,
    "bgr": cv2.COLOR_BGR2RGB,
    "bgra": cv2.COLOR_BGRA2RGB,
    "gray": cv2.COLOR_GRAY2RGB,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}


def message_field(msg: object, name: str, kind: str) -> Any:  # Any: the field's own type
    """``msg.<name>``, or :class:`ImageError` (``invalid_field``) naming ``kind`` when absent."""
    try:
        return getattr(msg, name)
    except AttributeError:
        raise ImageError("invalid_field", f"{kind} message has no field '{name}'") from None


def check_image_size(kind: str, width: int, height: int, max_image_pixels: int) -> None:
    """Refuse an empty image (``empty``) or one above ``max_image_pixels`` (``too_large``)."""
    if width == 0 or height == 0:
        raise ImageError("empty", f"{kind} is empty: width {width}, height {height}")
    if width * height > max_image_pixels:
        raise ImageError(
            "too_large",
            f"{kind} of width {width} x height {height} = {width * height} pixels exceeds "
            f"max_image_pixels {max_image_pixels}",
        )


def _uint_field(msg: object, name: str, kind: str) -> int:
    value = message_field(msg, name, kind)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ImageError(
            "invalid_field", f"{kind}.{name} must be an integer, got {type(value).__name__}"
        )
    if value < 0:
        raise ImageError("invalid_field", f"{kind}.{name} must be >= 0, got {int(value)}")
    return int(value)


def data_length(data: object, field: str) -> int:
    """Byte length of a message payload without copying it.

    Args:
        data: ``bytes``, ``bytearray``, ``memoryview``, ``array.array``, a 1-byte numpy
            array, or a list / tuple of ints.
        field: The field's name for the error message (``"Image.data"``).

    Raises:
        ImageError: ``invalid_field`` for any other type or a numpy dtype wider than a byte.
    """
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if isinstance(data, np.ndarray):
        if data.dtype.itemsize != 1 or data.dtype.kind not in "uib":
            raise ImageError(
                "invalid_field", f"{field} must hold bytes (uint8), got dtype {data.dtype}"
            )
        return int(data.size)
    if isinstance(data, (memoryview, array.array)):
        view = memoryview(data)
        return view.nbytes
    if isinstance(data, (list, tuple)):
        return len(data)
    raise ImageError(
        "invalid_field",
        f"{field} must be bytes, array.array, numpy uint8 array or list, got {type(data).__name__}",
    )


def data_bytes(data: object, field: str) -> np.ndarray:
    """The payload as a 1-D uint8 array, a zero-copy view where the type allows it.

    Args:
        data: A payload of a type :func:`data_length` accepts (call it first).
        field: The field's name for the error message.

    Raises:
        ImageError: ``invalid_field``: a non-contiguous buffer, or a list that does not
            hold integers in 0..255.
    """
    if isinstance(data, (bytes, bytearray)):
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, np.ndarray):
        flat = data.reshape(-1)
        return flat if flat.dtype == np.uint8 else flat.view(np.uint8)
    if isinstance(data, (memoryview, array.array)):
        view = memoryview(data)
        if not view.contiguous:
            raise ImageError("invalid_field", f"{field} buffer is not contiguous")
        return np.frombuffer(view.cast("B"), dtype=np.uint8)
    # list / tuple of ints (checked by data_length)
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise ImageError("invalid_field", f"{field} list is not a list of bytes: {exc}") from None
    if arr.size and (
        arr.dtype.kind not in "iub" or arr.ndim != 1 or int(arr.min()) < 0 or int(arr.max()) > 255
    ):
        raise ImageError("invalid_field", f"{field} list must hold integers in 0..255")
    return arr.astype(np.uint8, copy=False)


def _lookup_encoding(encoding: object) -> tuple[str, _Encoding]:
    if not isinstance(encoding, str):
        raise ImageError(
            "invalid_field", f"Image.encoding must be a string, got {type(encoding).__name__}"
        )
    key = encoding.strip().lower()
    spec = _ENCODINGS.get(key)
    if spec is None:
        shown = encoding if len(encoding) <= 40 else encoding[:40] + "..."
        raise ImageError(
            "unknown_encoding",
            f"Image.encoding '{shown}' is not supported (supported: "
            f"{', '.join(SUPPORTED_ENCODINGS)})",
        )
    return key, spec


def image_to_array(msg: object, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` (or any object with its fields) to an RGB array.

    Args:
        msg: Object with ``height, width, encoding, is_bigendian, step, data``; ``data`` may
            be ``bytes``, ``bytearray``, ``array.array('B')``, a uint8 ``np.ndarray`` or a list.
        max_image_pixels: Largest accepted ``width * height``; checked before any
            allocation proportional to the image.

    Returns:
        ``[H, W, 3]`` RGB, C-contiguous. ``uint8`` for integer encodings (16-bit values
        become ``round(value * 255 / 65535)``, as cv_bridge converts them), ``float32``
        clipped to ``[0, 1]`` with NaN preserved for 32-bit float encodings. When no
        conversion is needed (``rgb8`` without row padding) the result is a view of
        ``msg.data`` (read-only for ``bytes``); copy it before writing into it.

    Raises:
        ImageError: ``invalid_field`` (missing or mistyped field), ``unknown_encoding``,
            ``empty`` (zero width or height), ``too_large`` (``width * height >
            max_image_pixels``), ``size_mismatch`` (``step < width * bytes_per_pixel``,
            ``data`` not ``step * height`` bytes, or an odd width for YUV 4:2:2).
    """
    kind = "Image"
    height = _uint_field(msg, "height", kind)
    width = _uint_field(msg, "width", kind)
    step = _uint_field(msg, "step", kind)
    key, spec = _lookup_encoding(message_field(msg, "encoding", kind))
    big_endian = bool(message_field(msg, "is_bigendian", kind))
    data = message_field(msg, "data", kind)
    check_image_size("Image", width, height, max_image_pixels)
    row_bytes = width * spec.bytes_per_pixel
    if step < row_bytes:
        raise ImageError(
            "size_mismatch",
            f"Image.step {step} is smaller than width * bytes_per_pixel = {row_bytes} "
            f"(width {width}, encoding {key}: {spec.bytes_per_pixel} bytes per pixel)",
        )
    length = data_length(data, f"{kind}.data")
    expected = step * height
    if length != expected:
        relation = "at least" if length < expected else "exactly"
        raise ImageError(
            "size_mismatch",
            f"Image data has {length} bytes, expected {relation} step*height = {expected} "
            f"(step {step}, height {height})",
        )
    if spec.order in ("uyvy", "yuyv") and width % 2:
        raise ImageError(
            "size_mismatch", f"Image.width {width} must be even for encoding {key} (YUV 4:2:2)"
        )
    buf = data_bytes(data, f"{kind}.data")
    # [H, step] -> [H, W * bytes_per_pixel]: drops row padding without copying.
    rows = buf.reshape(height, step)[:, :row_bytes]
    if spec.depth == 1:
        pixels = rows.reshape(height, width, spec.channels)
    elif spec.depth == 2:
        wire = np.dtype(">u2" if big_endian else "<u2")
        values = rows.reshape(height, width * spec.channels, 2).view(wire)
        values = values.reshape(height, width, spec.channels)  # [H, W, C] uint16
        pixels = to_8bit(values)
    else:
        dtype = np.dtype(">f4" if big_endian else "<f4")
        pixels = rows.reshape(height, width * spec.channels, 4).view(dtype)
        pixels = pixels.reshape(height, width, spec.channels)
        return _float_to_rgb(pixels, spec.order)
    return _uint8_to_rgb(pixels, spec.order)


def to_8bit(values: np.ndarray) -> np.ndarray:
    """uint16 (any byte order) ``[H, W, C]`` -> uint8 ``round(v * 255 / 65535)`` (cv_bridge's
    MONO16 -> MONO8 scaling; never a tie, so the rounding rule does not matter)."""
    if not values.dtype.isnative or not values.flags.c_contiguous:
        values = np.ascontiguousarray(values, dtype=np.uint16)
    if values.shape[2] == 1:
        values = values[..., 0]  # OpenCV returns [H, W] for one channel anyway
    out = cv2.convertScaleAbs(values, alpha=255.0 / 65535.0)
    return out if out.ndim == 3 else out[..., None]


def _uint8_to_rgb(pixels: np.ndarray, order: str) -> np.ndarray:
    # pixels: uint8 [H, W, channels], possibly strided.
    if order == "rgb":
        return np.ascontiguousarray(pixels)
    if order.startswith("bayer_") or order == "gray":
        pixels = pixels[..., 0]  # [H, W]
        code = _BAYER_CODES[order] if order != "gray" else _TO_RGB_CODES["gray"]
    else:
        code = _TO_RGB_CODES[order]
    if not pixels.flags.c_contiguous:
        pixels = np.ascontiguousarray(pixels)
    return cv2.cvtColor(pixels, code)  # [H, W, 3]


def _float_to_rgb(pixels: np.ndarray, order: str) -> np.ndarray:
    # pixels: float32 (either byte order) [H, W, channels] -> float32 [H, W, 3] in [0, 1].
    native = pixels.astype(np.float32)  # copies: native byte order, contiguous
    if order == "gray":
        rgb = np.repeat(native, 3, axis=2)
    elif order in ("bgr", "bgra"):
        rgb = np.ascontiguousarray(native[..., 2::-1])
    else:  # rgb / rgba
        rgb = np.ascontiguousarray(native[..., :3])
    np.clip(rgb, 0.0, 1.0, out=rgb)  # NaN stays NaN
    return rgb
