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
import struct
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

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

#: Default bound on ``width * height`` of an incoming image (8192 x 4096).
DEFAULT_MAX_IMAGE_PIXELS = 8192 * 4096


class ImageError(ValueError):
    """An image message that cannot be converted.

    Attributes:
        cause: Short stable key for diagnostics: ``invalid_field``, ``unknown_encoding``,
            ``size_mismatch``, ``empty``, ``too_large``, ``corrupt_compressed``,
            ``unsupported_format`` (and ``geometry_mismatch`` from
            :mod:`rvm_ros.preprocess`).
    """

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause

    def __reduce__(self) -> tuple[Any, ...]:
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


def _field(msg: Any, name: str, kind: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise ImageError("invalid_field", f"{kind} message has no field '{name}'") from None


def _uint_field(msg: Any, name: str, kind: str) -> int:
    value = _field(msg, name, kind)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ImageError(
            "invalid_field", f"{kind}.{name} must be an integer, got {type(value).__name__}"
        )
    if value < 0:
        raise ImageError("invalid_field", f"{kind}.{name} must be >= 0, got {int(value)}")
    return int(value)


def _data_length(data: Any, field: str) -> int:
    """Byte length of a message payload without copying it."""
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


def _data_bytes(data: Any, field: str) -> np.ndarray:
    """The payload as a 1-D uint8 array, a zero-copy view where the type allows it."""
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
    # list / tuple of ints (checked by _data_length)
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise ImageError("invalid_field", f"{field} list is not a list of bytes: {exc}") from None
    if arr.size and (
        arr.dtype.kind not in "iub" or arr.ndim != 1 or int(arr.min()) < 0 or int(arr.max()) > 255
    ):
        raise ImageError("invalid_field", f"{field} list must hold integers in 0..255")
    return arr.astype(np.uint8, copy=False)


def _lookup_encoding(encoding: Any) -> tuple[str, _Encoding]:
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


def image_to_array(msg: Any, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
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
    key, spec = _lookup_encoding(_field(msg, "encoding", kind))
    big_endian = bool(_field(msg, "is_bigendian", kind))
    data = _field(msg, "data", kind)
    if height == 0 or width == 0:
        raise ImageError("empty", f"Image is empty: width {width}, height {height}")
    if width * height > max_image_pixels:
        raise ImageError(
            "too_large",
            f"Image of width {width} x height {height} = {width * height} pixels exceeds "
            f"max_image_pixels {max_image_pixels}",
        )
    row_bytes = width * spec.bytes_per_pixel
    if step < row_bytes:
        raise ImageError(
            "size_mismatch",
            f"Image.step {step} is smaller than width * bytes_per_pixel = {row_bytes} "
            f"(width {width}, encoding {key}: {spec.bytes_per_pixel} bytes per pixel)",
        )
    length = _data_length(data, f"{kind}.data")
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
    buf = _data_bytes(data, f"{kind}.data")
    # [H, step] -> [H, W * bytes_per_pixel]: drops row padding without copying.
    rows = buf.reshape(height, step)[:, :row_bytes]
    if spec.depth == 1:
        pixels = rows.reshape(height, width, spec.channels)
    elif spec.depth == 2:
        wire = np.dtype(">u2" if big_endian else "<u2")
        values = rows.reshape(height, width * spec.channels, 2).view(wire)
        values = values.reshape(height, width, spec.channels)  # [H, W, C] uint16
        pixels = _to_8bit(values)
    else:
        dtype = np.dtype(">f4" if big_endian else "<f4")
        pixels = rows.reshape(height, width * spec.channels, 4).view(dtype)
        pixels = pixels.reshape(height, width, spec.channels)
        return _float_to_rgb(pixels, spec.order)
    return _uint8_to_rgb(pixels, spec.order)


def _to_8bit(values: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------------------
# Compressed images
# --------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carrying the frame size (all but DHT C4, JPG C8, DAC CC).
_JPEG_SOF = frozenset(
    (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
)
# Markers without a length field.
_JPEG_STANDALONE = frozenset((0x01, *range(0xD0, 0xD9)))


def _png_size(data: memoryview) -> tuple[int, int]:
    """``(width, height)`` from a PNG IHDR chunk (no decoding)."""
    if len(data) < 33:
        raise ImageError("corrupt_compressed", f"PNG data has only {len(data)} bytes (< 33)")
    if bytes(data[12:16]) != b"IHDR":
        raise ImageError("corrupt_compressed", "PNG data does not start with an IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: memoryview) -> tuple[int, int, int]:
    """``(width, height, end of the frame header)`` from the first JPEG start-of-frame
    segment (no decoding)."""
    pos = 2  # after SOI
    end = len(data)
    while pos < end:
        if data[pos] != 0xFF:
            raise ImageError(
                "corrupt_compressed", f"JPEG data: expected a marker at byte {pos}, found none"
            )
        while pos < end and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= end:
            break
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9:  # EOI before any frame
            break
        if pos + 2 > end:
            break
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise ImageError(
                "corrupt_compressed", f"JPEG data: segment length {length} at byte {pos}"
            )
        if marker in _JPEG_SOF:
            if length < 8 or pos + 7 > end:
                break
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            if height == 0:
                raise ImageError(
                    "unsupported_format", "JPEG data declares height 0 (DNL marker) - unsupported"
                )
            return width, height, pos + length
        if marker == 0xDA:  # start of scan without a frame header
            break
        pos += length
    raise ImageError("corrupt_compressed", "JPEG data has no start-of-frame header")


def _sniff(data: memoryview) -> str | None:
    head = bytes(data[:8])
    if head == _PNG_SIGNATURE:
        return "png"
    if head[:2] == b"\xff\xd8":
        return "jpeg"
    return None


def _declared_container(fmt: str) -> str | None:
    """Container named by a CompressedImage.format string, None when it names none."""
    text = fmt.lower()
    if "compresseddepth" in text:
        raise ImageError(
            "unsupported_format",
            f"CompressedImage.format '{fmt}': compressedDepth images are not supported",
        )
    words = set(text.replace(";", " ").replace(",", " ").split())
    has_jpeg = bool(words & {"jpeg", "jpg"})
    has_png = "png" in words
    if has_jpeg and has_png:
        raise ImageError(
            "unsupported_format", f"CompressedImage.format '{fmt}' names both jpeg and png"
        )
    if has_jpeg:
        return "jpeg"
    if has_png:
        return "png"
    if words:
        raise ImageError(
            "unsupported_format",
            f"CompressedImage.format '{fmt}' is not supported (jpeg or png)",
        )
    return None


def _header(raw: memoryview) -> tuple[str, int, int, int]:
    """``(container, width, height, end of header)`` of JPEG / PNG data."""
    container = _sniff(raw)
    if container == "png":
        width, height = _png_size(raw)
        return container, width, height, 33
    if container == "jpeg":
        return (container, *_jpeg_size(raw))
    raise ImageError(
        "corrupt_compressed",
        f"CompressedImage data is neither JPEG nor PNG (starts with {raw[:8].hex()})",
    )


def compressed_size(data: bytes | bytearray | memoryview | np.ndarray) -> tuple[str, int, int]:
    """Container and size of compressed image data, read from its header only.

    Args:
        data: JPEG or PNG bytes.

    Returns:
        ``(container, width, height)`` with container ``"jpeg"`` or ``"png"``.

    Raises:
        ImageError: ``corrupt_compressed`` when the data is neither JPEG nor PNG or its
            header is damaged; ``unsupported_format`` for JPEG frames sized by a DNL marker.
    """
    raw = memoryview(data if not isinstance(data, np.ndarray) else data.tobytes()).cast("B")
    container, width, height, _ = _header(raw)
    return container, width, height


def _has_end_marker(raw: memoryview, container: str, header_end: int) -> bool:
    """Whether the end marker (JPEG EOI / PNG IEND) follows the header (truncation check).

    Only the last 64 kB are searched, so trailing bytes after the marker are tolerated.
    An EOI of an embedded thumbnail lies before the frame header and does not count; in
    entropy-coded JPEG data 0xFF is always followed by 0x00 or a restart marker.
    """
    start = max(header_end, len(raw) - 65536)
    marker = b"\xff\xd9" if container == "jpeg" else b"IEND"
    return bytes(raw[start:]).rfind(marker) != -1


def compressed_to_array(msg: Any, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) to an RGB uint8 array.

    The image size is read from the JPEG start-of-frame / PNG IHDR header and checked
    against ``max_image_pixels`` before the decoder runs, so a small message declaring a
    huge image cannot make the decoder allocate it.

    Args:
        msg: Object with ``format`` (as ROS writes it: ``"jpeg"``, ``"png"``,
            ``"rgb8; jpeg compressed bgr8"``, ... or ``""`` to detect from the data)
            and ``data`` (bytes, array.array, uint8 numpy array or list).
        max_image_pixels: Largest accepted ``width * height``.

    Returns:
        ``[H, W, 3]`` uint8 RGB (16-bit PNGs scaled like raw 16-bit images, alpha dropped).

    Raises:
        ImageError: ``invalid_field``, ``unsupported_format`` (format other than jpeg/png,
            compressedDepth), ``corrupt_compressed`` (empty, truncated or undecodable data,
            data not matching the declared format), ``empty``, ``too_large``.
    """
    kind = "CompressedImage"
    fmt = _field(msg, "format", kind)
    if not isinstance(fmt, str):
        raise ImageError(
            "invalid_field", f"{kind}.format must be a string, got {type(fmt).__name__}"
        )
    data = _field(msg, "data", kind)
    length = _data_length(data, f"{kind}.data")
    declared = _declared_container(fmt)
    if length == 0:
        raise ImageError("corrupt_compressed", f"{kind}.data is empty (format '{fmt}')")
    buf = _data_bytes(data, f"{kind}.data")
    if not buf.flags.c_contiguous:
        buf = np.ascontiguousarray(buf)
    raw = memoryview(buf.data)
    container = _sniff(raw)
    if container is None:
        raise ImageError(
            "corrupt_compressed",
            f"{kind}.data is neither JPEG nor PNG (format '{fmt}', starts with {raw[:8].hex()})",
        )
    if declared is not None and declared != container:
        raise ImageError(
            "corrupt_compressed",
            f"{kind}.format '{fmt}' says {declared} but the data is {container}",
        )
    _, width, height, header_end = _header(raw)
    if width == 0 or height == 0:
        raise ImageError("empty", f"{kind} is empty: width {width}, height {height}")
    if width * height > max_image_pixels:
        raise ImageError(
            "too_large",
            f"{kind} of width {width} x height {height} = {width * height} pixels exceeds "
            f"max_image_pixels {max_image_pixels}",
        )
    if not _has_end_marker(raw, container, header_end):
        what = "no end-of-image marker" if container == "jpeg" else "no IEND chunk"
        raise ImageError("corrupt_compressed", f"{kind}.data: {container} truncated ({what})")
    try:
        decoded: np.ndarray | None = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # some decoders raise instead of returning None
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "decoder error"
        raise ImageError(
            "corrupt_compressed", f"{kind}.data: {container} data cannot be decoded ({first})"
        ) from None
    if decoded is None or decoded.ndim not in (2, 3):
        raise ImageError("corrupt_compressed", f"{kind}.data: {container} data cannot be decoded")
    if decoded.shape[0] != height or decoded.shape[1] != width:
        raise ImageError(
            "corrupt_compressed",
            f"{kind}.data: decoded size {decoded.shape[1]}x{decoded.shape[0]} differs from "
            f"the header's {width}x{height}",
        )
    if decoded.dtype == np.uint16:
        decoded = _to_8bit(decoded if decoded.ndim == 3 else decoded[..., None])
    elif decoded.dtype != np.uint8:
        raise ImageError(
            "unsupported_format", f"{kind}.data decodes to {decoded.dtype}, expected 8/16 bit"
        )
    if decoded.ndim == 2:
        return cv2.cvtColor(decoded, cv2.COLOR_GRAY2RGB)
    channels = decoded.shape[2]
    if channels == 1:
        return cv2.cvtColor(decoded[..., 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB)
    raise ImageError("unsupported_format", f"{kind}.data decodes to {channels} channels")


# --------------------------------------------------------------------------------------
# Arrays -> message fields
# --------------------------------------------------------------------------------------

_OUTPUT_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "32FC1", "32FC3")


def _check_rgb(rgb: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{what}: expected an RGB array [H, W, 3], got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{what}: image is empty (shape {arr.shape})")
    return arr


def array_to_image_fields(
    rgb: np.ndarray,
    encoding: str = "rgb8",
    *,
    is_bigendian: bool = False,
    row_padding: int = 0,
) -> dict[str, Any]:
    """Fields of a ``sensor_msgs/Image`` holding an RGB array.

    Args:
        rgb: ``[H, W, 3]`` RGB, uint8 (or float in [0, 1] for the ``32FC*`` encodings,
            where uint8 input is divided by 255).
        encoding: One of ``rgb8, bgr8, rgba8, bgra8`` (alpha 255), ``mono8`` (ITU-R 601
            luma, OpenCV's RGB2GRAY), ``mono16`` (luma * 257, so ``>> 8`` gives it back),
            ``32FC1`` (luma / 255), ``32FC3`` (BGR order, as cv_bridge reads it).
        is_bigendian: Byte order of 16/32-bit values.
        row_padding: Extra bytes (zeros) at the end of every row (``step > width * bpp``).

    Returns:
        Dict with ``height, width, encoding, is_bigendian, step, data`` (``data`` bytes),
        ready for ``Image(**fields)`` (rclpy) or the rosbags message class.

    Raises:
        ValueError: Wrong shape/dtype, unknown encoding, or negative padding.
    """
    arr = _check_rgb(rgb, "array_to_image_fields")
    if row_padding < 0:
        raise ValueError(f"array_to_image_fields: row_padding must be >= 0, got {row_padding}")
    height, width = arr.shape[:2]
    pixels: np.ndarray
    if encoding in ("32FC1", "32FC3"):
        floats = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr
        floats = floats.astype(np.float32)
        if encoding == "32FC1":
            gray = 0.299 * floats[..., 0] + 0.587 * floats[..., 1] + 0.114 * floats[..., 2]
            pixels = gray.astype(np.float32)[..., None]
        else:
            pixels = floats[..., ::-1]
        pixels = pixels.astype(">f4" if is_bigendian else "<f4")
    else:
        if arr.dtype != np.uint8:
            raise ValueError(
                f"array_to_image_fields: encoding {encoding} needs uint8 input, got {arr.dtype}"
            )
        arr = np.ascontiguousarray(arr)
        if encoding == "rgb8":
            pixels = arr
        elif encoding == "bgr8":
            pixels = arr[..., ::-1]
        elif encoding == "rgba8":
            pixels = cv2.cvtColor(arr, cv2.COLOR_RGB2RGBA)
        elif encoding == "bgra8":
            pixels = cv2.cvtColor(arr, cv2.COLOR_RGB2BGRA)
        elif encoding == "mono8":
            pixels = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)[..., None]
        elif encoding == "mono16":
            gray16 = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
            pixels = gray16.astype(">u2" if is_bigendian else "<u2")[..., None]
        else:
            raise ValueError(
                f"array_to_image_fields: encoding '{encoding}' not supported "
                f"(supported: {', '.join(_OUTPUT_ENCODINGS)})"
            )
    row = np.ascontiguousarray(pixels).reshape(height, -1).view(np.uint8)
    if row_padding:
        row = np.concatenate([row, np.zeros((height, row_padding), np.uint8)], axis=1)
    return {
        "height": int(height),
        "width": int(width),
        "encoding": encoding,
        "is_bigendian": bool(is_bigendian),
        "step": int(row.shape[1]),
        "data": row.tobytes(),
    }


def array_to_compressed_fields(
    rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90
) -> dict[str, Any]:
    """Fields of a ``sensor_msgs/CompressedImage`` holding an RGB uint8 array.

    Args:
        rgb: ``[H, W, 3]`` uint8 RGB.
        fmt: ``"jpeg"`` or ``"png"``.
        quality: JPEG quality 1..100 (ignored for PNG).

    Returns:
        Dict with ``format`` (as image_transport writes it, e.g.
        ``"rgb8; jpeg compressed bgr8"``) and ``data`` (bytes).

    Raises:
        ValueError: Wrong shape/dtype, unknown format or quality out of range.
    """
    arr = _check_rgb(rgb, "array_to_compressed_fields")
    if arr.dtype != np.uint8:
        raise ValueError(f"array_to_compressed_fields: needs uint8 input, got {arr.dtype}")
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"array_to_compressed_fields: fmt must be 'jpeg' or 'png', got '{fmt}'")
    if not 1 <= quality <= 100:
        raise ValueError(f"array_to_compressed_fields: quality must be 1..100, got {quality}")
    bgr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, encoded = cv2.imencode(".png", bgr)
    if not ok:  # pragma: no cover - OpenCV failing on a valid uint8 image
        raise ValueError(f"array_to_compressed_fields: OpenCV could not encode {fmt}")
    return {"format": f"rgb8; {fmt} compressed bgr8", "data": encoded.tobytes()}
