"""Debug visualisation: PCA colouring of feature grids, track drawing, debug images.

All functions are pure (numpy / OpenCV) and return new uint8 RGB images; inputs are never
modified.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike

from rvm_ros.imaging.preprocess import Geometry
from rvm_ros.viz.pca import PcaBasis, pca_colors
from rvm_ros.viz.tracks import draw_tracks

__all__ = ["DebugRenderer", "debug_image"]


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
    tracks: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike] | None = None,
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
    out: np.ndarray = img.copy()
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
        tracks: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike] | None = None,
        cell_size: int | None = None,
    ) -> np.ndarray:
        """Render one frame (see :func:`debug_image`)."""
        refit = self.refit_every > 0 and self._frames % self.refit_every == 0
        if self.basis is None or refit or self.basis.channels != np.asarray(features).shape[-1]:
            _, self.basis = pca_colors(features)
        self._frames += 1
        return debug_image(image_rgb, features, geometry, tracks, self.basis, cell_size, self.alpha)
