"""RGB arrays -> ``sensor_msgs/Image`` / ``CompressedImage`` message fields."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

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
) -> dict[str, Any]:  # Any: int / str / bool / bytes values, splatted into rclpy or rosbags classes
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
) -> dict[str, Any]:  # Any: str / bytes values, splatted into rclpy or rosbags classes
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
