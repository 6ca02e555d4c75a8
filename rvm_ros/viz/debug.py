"""Debug visualisation: PCA colouring of feature grids, track drawing, debug images.

All functions are pure (numpy / OpenCV) and return new uint8 RGB images; inputs are never
modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from rvm_ros.preprocess import Geometry

__all__ = [
    "DebugRenderer",
    "PcaBasis",
    "debug_image",
    "draw_tracks",
    "pca_colors",
    "track_color",
]


@dataclass(frozen=True, eq=False)
class PcaBasis:
    """A 3-component PCA projection with a fixed colour range.

    Holds arrays, so instances compare by identity (``eq=False``).

    Attributes:
        mean: ``[C]`` feature mean.
        components: ``[3, C]`` unit principal directions (rows), sign-normalised.
        low: ``[3]`` projection value mapped to colour 0 (2nd percentile at fit time).
        high: ``[3]`` projection value mapped to colour 255 (98th percentile).
    """

    mean: np.ndarray
    components: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def channels(self) -> int:
        """Feature channels C the basis was fitted on."""
        return int(self.mean.shape[0])


def _top_directions(centred: np.ndarray, k: int, iterations: int = 30) -> np.ndarray:
    """The ``k`` leading principal directions of centred data ``[N, C]`` as rows ``[k', C]``.

    Orthogonal (subspace) iteration with a few extra vectors and a Rayleigh-Ritz step:
    only matrix products and tiny factorisations, much cheaper than a full SVD for the
    3 components needed here. Starts from a fixed pseudo-random basis, so it is
    deterministic. ``k' = min(k, N, C)``.
    """
    n, c = centred.shape
    k = min(k, n, c)
    m = min(k + 5, n, c)  # subspace size with oversampling
    start = np.random.default_rng(0).standard_normal((c, m))
    q, _ = np.linalg.qr(start)  # [C, m]
    for _ in range(iterations):
        q, _ = np.linalg.qr(centred.T @ (centred @ q))  # [C, m]
    projected = centred @ q  # [N, m]
    _, vectors = np.linalg.eigh(projected.T @ projected)  # eigenvalues ascending
    return (q @ vectors[:, ::-1][:, :k]).T  # [k, C]


def _fit_basis(flat: np.ndarray) -> PcaBasis:
    # flat: [N, C] float64
    n, c = flat.shape
    mean = flat.mean(axis=0)
    centred = flat - mean
    components = np.zeros((3, c), dtype=np.float64)
    if n > 1:
        top = _top_directions(centred, 3)
        components[: top.shape[0]] = top
    # Directions have no sign: make the largest-magnitude loading of each row positive.
    for i in range(3):
        j = int(np.argmax(np.abs(components[i])))
        if components[i, j] < 0:
            components[i] = -components[i]
    proj = centred @ components.T  # [N, 3]
    low = np.percentile(proj, 2, axis=0)
    high = np.percentile(proj, 98, axis=0)
    return PcaBasis(mean=mean, components=components, low=low, high=high)


def pca_colors(features: np.ndarray, basis: PcaBasis | None = None) -> tuple[np.ndarray, PcaBasis]:
    """Colour a feature grid by its first three principal components.

    Args:
        features: ``[h, w, C]`` (any float dtype; non-finite values count as 0).
        basis: Reuse this basis (and colour range) instead of fitting one, for colours
            that stay consistent across frames.

    Returns:
        ``(colors [h, w, 3] uint8 RGB, basis)``; the same input and basis always give the
        same colours.

    Raises:
        ValueError: Wrong shape, or a basis fitted on a different channel count.
    """
    feats = np.asarray(features)
    if feats.ndim != 3 or feats.shape[0] == 0 or feats.shape[1] == 0 or feats.shape[2] == 0:
        raise ValueError(f"pca_colors: expected non-empty features [h, w, C], got {feats.shape}")
    h, w, c = feats.shape
    flat = np.nan_to_num(feats.reshape(-1, c).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if basis is None:
        basis = _fit_basis(flat)
    elif basis.channels != c:
        raise ValueError(
            f"pca_colors: basis was fitted on {basis.channels} channels, features have {c}"
        )
    proj = (flat - basis.mean) @ basis.components.T  # [h*w, 3]
    span = basis.high - basis.low
    span = np.where(span > 1e-12, span, 1.0)
    unit = np.clip((proj - basis.low) / span, 0.0, 1.0)
    colors = np.round(unit * 255.0).astype(np.uint8).reshape(h, w, 3)
    return colors, basis


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
    xs: Any,
    ys: Any,
    visible: Any,
    ids: Any,
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
    out = img.copy()
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


def _cell_span(
    size: int, scale: float, offset: float, cell: int, cells: int
) -> tuple[int, int, int, np.ndarray] | None:
    """Image pixels ``[p0, p1)`` along one axis that fall into grid cells ``0..cells-1``.

    Returns ``(p0, p1, first_cell, pixels_per_cell)`` (counts for consecutive cells from
    ``first_cell``), or None when no pixel has a cell.
    """
    centres = np.arange(size, dtype=np.float64) + 0.5
    index = np.floor((centres * scale + offset) / cell)  # [size], non-decreasing
    inside = np.flatnonzero((index >= 0) & (index < cells))
    if inside.size == 0:
        return None
    p0, p1 = int(inside[0]), int(inside[-1]) + 1
    first = int(index[p0])
    counts = np.bincount((index[p0:p1] - first).astype(np.int64))
    return p0, p1, first, counts


def debug_image(
    image_rgb: np.ndarray,
    features: np.ndarray,
    geometry: Geometry,
    tracks: tuple[Any, Any, Any, Any] | None = None,
    basis: PcaBasis | None = None,
    cell_size: int | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """The debug image: PCA colours of the features blended over the input image, plus tracks.

    Each image pixel takes the colour of the feature cell its centre maps to (via
    ``geometry``, as :meth:`Geometry.image_to_cell`); pixels without a cell (cropped away,
    or beyond the last whole cell) keep the plain image.

    Args:
        image_rgb: ``[image_height, image_width, 3]`` uint8 RGB input image.
        features: ``[h, w, C]`` feature grid of that image.
        geometry: The image's :class:`Geometry`.
        tracks: Optional ``(xs, ys, visible, ids)`` in image pixels.
        basis: PCA basis to reuse (see :func:`pca_colors`); fitted on these features if None.
        cell_size: Network pixels per cell; default ``model_width // w``.
        alpha: Weight of the PCA colours (0 = image only, 1 = colours only).

    Returns:
        ``[image_height, image_width, 3]`` uint8 RGB.

    Raises:
        ValueError: Shapes that do not agree with the geometry.
    """
    img = np.asarray(image_rgb)
    expected = (geometry.image_height, geometry.image_width, 3)
    if img.shape != expected or img.dtype != np.uint8:
        raise ValueError(
            f"debug_image: image must be uint8 {expected} (from geometry), got "
            f"{img.dtype} {img.shape}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"debug_image: alpha must be in [0, 1], got {alpha}")
    colors, _ = pca_colors(features, basis)  # [h, w, 3]
    gh, gw = colors.shape[:2]
    cell = cell_size if cell_size is not None else geometry.model_width // gw
    if cell <= 0:
        raise ValueError(f"debug_image: cell_size must be > 0, got {cell}")
    # The mapping is axis-aligned and monotonic, so each image column / row has one grid
    # column / row (pixel centre at i + 0.5, as in Geometry.image_to_cell) and the pixels
    # with a cell form one rectangle, filled by repeating each cell colour.
    out = img.copy()
    span_x = _cell_span(geometry.image_width, geometry.scale_x, geometry.offset_x, cell, gw)
    span_y = _cell_span(geometry.image_height, geometry.scale_y, geometry.offset_y, cell, gh)
    if span_x is not None and span_y is not None:
        (x0, x1, c0, counts_x), (y0, y1, r0, counts_y) = span_x, span_y
        sub = colors[r0 : r0 + counts_y.size, c0 : c0 + counts_x.size]  # [rows, cols, 3]
        up = np.repeat(np.repeat(sub, counts_y, axis=0), counts_x, axis=1)  # [y1-y0, x1-x0, 3]
        out[y0:y1, x0:x1] = cv2.addWeighted(img[y0:y1, x0:x1], 1.0 - alpha, up, alpha, 0.0)
    if tracks is not None:
        xs, ys, visible, ids = tracks
        out = draw_tracks(out, xs, ys, visible, ids)
    return out


class DebugRenderer:
    """Debug images with a PCA basis kept across frames (stable colours).

    Args:
        refit_every: Refit the basis every this many frames (0: fit once).
        alpha: Weight of the PCA colours.
    """

    def __init__(self, refit_every: int = 0, alpha: float = 0.5) -> None:
        if refit_every < 0:
            raise ValueError(f"DebugRenderer: refit_every must be >= 0, got {refit_every}")
        self.refit_every = refit_every
        self.alpha = alpha
        self.basis: PcaBasis | None = None
        self._frames = 0

    def reset(self) -> None:
        """Forget the basis (e.g. after a model or camera change)."""
        self.basis = None
        self._frames = 0

    def render(
        self,
        image_rgb: np.ndarray,
        features: np.ndarray,
        geometry: Geometry,
        tracks: tuple[Any, Any, Any, Any] | None = None,
        cell_size: int | None = None,
    ) -> np.ndarray:
        """Render one frame (see :func:`debug_image`)."""
        refit = self.refit_every > 0 and self._frames % self.refit_every == 0
        if self.basis is None or refit or self.basis.channels != np.asarray(features).shape[-1]:
            _, self.basis = pca_colors(features)
        self._frames += 1
        return debug_image(image_rgb, features, geometry, tracks, self.basis, cell_size, self.alpha)
