"""Drawing tracked points (colour per track id, visible / not visible)."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike


def track_color(track_id: int) -> tuple[int, int, int]:
    """A fixed, saturated RGB colour for a track id (golden-ratio hue spacing)."""
    hue = (int(track_id) * 0.618033988749895) % 1.0
    hsv = np.array([[[hue * 180.0, 220.0, 255.0]]], dtype=np.float32)
    hsv_u8 = np.round(hsv).astype(np.uint8)
    rgb = cv2.cvtColor(hsv_u8, cv2.COLOR_HSV2RGB)[0, 0]
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


_SHIFT = 4  # sub-pixel bits for OpenCV drawing


def draw_tracks(
    image_rgb: np.ndarray,
    xs: ArrayLike,
    ys: ArrayLike,
    visible: ArrayLike,
    ids: ArrayLike,
    radius: int = 4,
    labels: bool = True,
) -> np.ndarray:
    """Draw tracked points over an image.

    Visible points are filled discs, occluded ones hollow circles, in a colour fixed per
    id (:func:`track_color`). Points with non-finite coordinates are skipped.

    Args:
        image_rgb: ``[H, W, 3]`` uint8 RGB (not modified).
        xs: ``[N]`` x in image pixels (pixel centres at integer + 0.5).
        ys: ``[N]`` y.
        visible: ``[N]`` bool.
        ids: ``[N]`` int track ids.
        radius: Marker radius in pixels.
        labels: Write the id next to each point.

    Returns:
        A new ``[H, W, 3]`` uint8 image.

    Raises:
        ValueError: Bad image or arrays of different lengths.
    """
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"draw_tracks: expected uint8 [H, W, 3], got {img.dtype} {img.shape}")
    x = np.asarray(xs, dtype=np.float64).reshape(-1)
    y = np.asarray(ys, dtype=np.float64).reshape(-1)
    vis = np.asarray(visible, dtype=bool).reshape(-1)
    tid = np.asarray(ids, dtype=np.int64).reshape(-1)
    if not x.shape == y.shape == vis.shape == tid.shape:
        raise ValueError(
            f"draw_tracks: xs, ys, visible, ids must have the same length, got "
            f"{x.size}, {y.size}, {vis.size}, {tid.size}"
        )
    out: np.ndarray = img.copy()
    for xi, yi, vi, ii in zip(x, y, vis, tid, strict=True):
        if not (np.isfinite(xi) and np.isfinite(yi)) or abs(xi) > 1e6 or abs(yi) > 1e6:
            continue
        # Continuous coordinates -> OpenCV pixel indices (centre of pixel i is at i).
        centre = (round((xi - 0.5) * (1 << _SHIFT)), round((yi - 0.5) * (1 << _SHIFT)))
        color = track_color(int(ii))
        thickness = -1 if vi else 1
        cv2.circle(out, centre, radius << _SHIFT, color, thickness, cv2.LINE_AA, _SHIFT)
        if labels:
            org = (round(xi) + radius + 1, round(yi) - radius - 1)
            cv2.putText(out, str(int(ii)), org, cv2.FONT_HERSHEY_PLAIN, 0.8, color, 1, cv2.LINE_AA)
    return out


def draw_legend(image_rgb: np.ndarray) -> np.ndarray:
    """A copy of ``image_rgb`` with a key in its top-right corner: filled disc = visible,
    hollow circle = not visible (the markers of :func:`draw_tracks`)."""
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"draw_legend: expected uint8 [H, W, 3], got {img.dtype} {img.shape}")
    out: np.ndarray = np.array(img, copy=True)
    h, w = out.shape[:2]
    box_w, box_h = 116, 36
    if w < box_w + 4 or h < box_h + 4:
        return out
    x0, y0 = w - box_w - 2, 2
    region = out[y0 : y0 + box_h, x0 : x0 + box_w]
    region[...] = (region.astype(np.float32) * 0.35).astype(np.uint8)
    white = (255, 255, 255)
    font = cv2.FONT_HERSHEY_PLAIN
    cv2.circle(out, (x0 + 10, y0 + 10), 4, white, -1, cv2.LINE_AA)
    cv2.putText(out, "visible", (x0 + 20, y0 + 14), font, 0.9, white, 1, cv2.LINE_AA)
    cv2.circle(out, (x0 + 10, y0 + 26), 4, white, 1, cv2.LINE_AA)
    cv2.putText(out, "not visible", (x0 + 20, y0 + 30), font, 0.9, white, 1, cv2.LINE_AA)
    return out
