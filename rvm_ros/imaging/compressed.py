"""``sensor_msgs/CompressedImage`` (PNG / JPEG) -> RGB, with sizes checked before decoding."""

from __future__ import annotations

import struct

import cv2
import numpy as np

from rvm_ros.imaging.image_msg import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageError,
    check_image_size,
    data_bytes,
    data_length,
    message_field,
    to_8bit,
)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KIND = "CompressedImage"  # message type named in errors


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


def _jpeg_segment(data: memoryview, pos: int) -> tuple[int, int, int] | None:
    """``(marker, offset of its length field, length)`` of the next JPEG segment that has a
    length, from the marker at ``pos`` on (stand-alone markers skipped); None at the end of
    the image (EOI) or of the data."""
    end = len(data)
    while pos < end:
        if data[pos] != 0xFF:
            raise ImageError(
                "corrupt_compressed", f"JPEG data: expected a marker at byte {pos}, found none"
            )
        while pos < end and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= end:
            return None
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9 or pos + 2 > end:  # EOI before any frame, or cut
            return None
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise ImageError(
                "corrupt_compressed", f"JPEG data: segment length {length} at byte {pos}"
            )
        return marker, pos, length
    return None


def _jpeg_size(data: memoryview) -> tuple[int, int, int]:
    """``(width, height, end of the frame header)`` from the first JPEG start-of-frame
    segment (no decoding)."""
    pos = 2  # after SOI
    while (segment := _jpeg_segment(data, pos)) is not None:
        marker, pos, length = segment
        if marker in _JPEG_SOF:
            if length < 8 or pos + 7 > len(data):
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


def compressed_to_array(
    msg: object, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> np.ndarray:
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
    buf, raw, container = _compressed_payload(msg)
    _, width, height, header_end = _header(raw)
    check_image_size(_KIND, width, height, max_image_pixels)
    if not _has_end_marker(raw, container, header_end):
        what = "no end-of-image marker" if container == "jpeg" else "no IEND chunk"
        raise ImageError("corrupt_compressed", f"{_KIND}.data: {container} truncated ({what})")
    return _to_rgb(_decode(buf, container, width, height))


def _compressed_payload(msg: object) -> tuple[np.ndarray, memoryview, str]:
    """``(data as uint8 [N], a byte view of it, container)`` of a message whose format
    field and data agree (JPEG or PNG)."""
    kind = _KIND
    fmt = message_field(msg, "format", kind)
    if not isinstance(fmt, str):
        raise ImageError(
            "invalid_field", f"{kind}.format must be a string, got {type(fmt).__name__}"
        )
    data = message_field(msg, "data", kind)
    length = data_length(data, f"{kind}.data")
    declared = _declared_container(fmt)
    if length == 0:
        raise ImageError("corrupt_compressed", f"{kind}.data is empty (format '{fmt}')")
    buf = data_bytes(data, f"{kind}.data")
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
    return buf, raw, container


def _decode(buf: np.ndarray, container: str, width: int, height: int) -> np.ndarray:
    """OpenCV's decoding of ``buf``, checked against the header's size (BGR[A] or grey)."""
    kind = _KIND
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
    return decoded


def _to_rgb(decoded: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` of a decoded 8/16-bit grey, BGR or BGRA image."""
    kind = _KIND
    if decoded.dtype == np.uint16:
        decoded = to_8bit(decoded if decoded.ndim == 3 else decoded[..., None])
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
