"""Fitting camera images to the network input size, and the pixel <-> cell geometry.

Coordinates are continuous with pixel centres at integer + 0.5: pixel ``(i, j)`` covers
``[i, i + 1) x [j, j + 1)``. An input-image point ``(u, v)`` maps to the network input
point ``(u * scale_x + offset_x, v * scale_y + offset_y)`` (the FeatureMap fields of the
same names), and a network point ``(x, y)`` lies in feature cell
``(floor(y / cell_size), floor(x / cell_size))``.

Resize modes:

- ``stretch``: the whole image to the whole input, independent x / y scales.
- ``letterbox``: uniform scale so that the whole image fits, centred; the padding is 0
  (black for uint8, 0.0 for float images).
- ``center_crop``: uniform scale so that the image covers the input, centred; the
  overhanging parts are cropped away (those image pixels have no cell).

In ``letterbox`` and ``center_crop`` the resized image has whole-pixel size and sits at a
whole-pixel offset, so the recorded scales are ``resized_size / image_size`` per axis
(equal up to rounding) and the geometry describes the produced pixels exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, cast, overload

import cv2
import numpy as np

from rvm_ros.imaging.image_msg import ImageError

#: Image / network coordinates: a float for one point, a float64 array for many.
Coord = TypeVar("Coord", float, np.ndarray)

__all__ = [
    "INTERPOLATIONS",
    "RESIZE_MODES",
    "Geometry",
    "Preprocessor",
    "fit_geometry",
    "preprocess",
]

#: Accepted ``mode`` values of :func:`fit_geometry`.
RESIZE_MODES: tuple[str, ...] = ("stretch", "letterbox", "center_crop")
#: Accepted ``interpolation`` values of :func:`preprocess`.
INTERPOLATIONS: tuple[str, ...] = ("auto", "area", "linear", "nearest")


@dataclass(frozen=True)
class Geometry:
    """How input-image pixels map to network-input pixels (``model = image * scale + offset``).

    Attributes:
        image_height: Input image rows.
        image_width: Input image columns.
        model_height: Network input rows.
        model_width: Network input columns.
        mode: ``stretch``, ``letterbox`` or ``center_crop``.
        scale_x: Network pixels per image pixel along x.
        scale_y: Network pixels per image pixel along y.
        offset_x: Network x of image x = 0.
        offset_y: Network y of image y = 0.
    """

    image_height: int
    image_width: int
    model_height: int
    model_width: int
    mode: str
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    @property
    def resized_width(self) -> int:
        """Columns of the resized image before padding / cropping."""
        return round(self.image_width * self.scale_x)

    @property
    def resized_height(self) -> int:
        """Rows of the resized image before padding / cropping."""
        return round(self.image_height * self.scale_y)

    def image_to_model(self, x: Coord, y: Coord) -> tuple[Coord, Coord]:
        """Map image points to network-input points (vectorised).

        Args:
            x: Image x (float or array).
            y: Image y (same shape as ``x``).

        Returns:
            ``(model_x, model_y)``: floats for scalar input, float64 arrays otherwise.
        """
        mx = np.asarray(x, dtype=np.float64) * self.scale_x + self.offset_x
        my = np.asarray(y, dtype=np.float64) * self.scale_y + self.offset_y
        return _unwrap(mx, x), _unwrap(my, y)

    def model_to_image(self, x: Coord, y: Coord) -> tuple[Coord, Coord]:
        """Map network-input points to image points (vectorised inverse of ``image_to_model``).

        Args:
            x: Network-input x (float or array).
            y: Network-input y (same shape as ``x``).

        Returns:
            ``(image_x, image_y)``: floats for scalar input, float64 arrays otherwise.
        """
        ix = (np.asarray(x, dtype=np.float64) - self.offset_x) / self.scale_x
        iy = (np.asarray(y, dtype=np.float64) - self.offset_y) / self.scale_y
        return _unwrap(ix, x), _unwrap(iy, y)

    def image_to_grid(self, x: Coord, y: Coord, cell_size: int) -> tuple[Coord, Coord]:
        """Map image points to continuous feature-grid coordinates (cell centres at i + 0.5).

        Args:
            x: Image x (float or array).
            y: Image y.
            cell_size: Network pixels per cell side.

        Returns:
            ``(grid_x, grid_y)`` (column, row direction), not bounds-checked.
        """
        mx, my = self.image_to_model(x, y)
        return _unwrap(np.asarray(mx) / cell_size, x), _unwrap(np.asarray(my) / cell_size, y)

    def grid_to_image(self, gx: Coord, gy: Coord, cell_size: int) -> tuple[Coord, Coord]:
        """Map continuous feature-grid coordinates back to image points.

        Args:
            gx: Grid x (columns; cell ``c`` spans ``[c, c + 1)``).
            gy: Grid y (rows).
            cell_size: Network pixels per cell side.

        Returns:
            ``(image_x, image_y)``.
        """
        ix, iy = self.model_to_image(
            np.asarray(gx, dtype=np.float64) * cell_size,
            np.asarray(gy, dtype=np.float64) * cell_size,
        )
        return _unwrap(ix, gx), _unwrap(iy, gy)

    @overload
    def image_to_cell(self, x: float, y: float, cell_size: int) -> tuple[int, int, bool]: ...
    @overload
    def image_to_cell(
        self, x: np.ndarray, y: np.ndarray, cell_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    @overload
    def image_to_cell(
        self, x: float | np.ndarray, y: float | np.ndarray, cell_size: int
    ) -> tuple[int, int, bool] | tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    def image_to_cell(
        self, x: float | np.ndarray, y: float | np.ndarray, cell_size: int
    ) -> tuple[int, int, bool] | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feature cell of image points.

        A point is valid when it lies inside the image and its network point lies in a
        whole cell of the input (``0 <= row < model_height // cell_size``, same for
        columns); cropped-away points are invalid.

        Args:
            x: Image x (float or array).
            y: Image y.
            cell_size: Network pixels per cell side (patch size times pooling).

        Returns:
            ``(row, col, valid)``: int64 arrays (or ints / bool for scalar input); row and
            col are -1 where ``valid`` is False.
        """
        if cell_size <= 0:
            raise ValueError(f"image_to_cell: cell_size must be > 0, got {cell_size}")
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        mx = xs * self.scale_x + self.offset_x
        my = ys * self.scale_y + self.offset_y
        with np.errstate(invalid="ignore"):
            col = np.floor(mx / cell_size)
            row = np.floor(my / cell_size)
            valid = (
                (xs >= 0)
                & (xs < self.image_width)
                & (ys >= 0)
                & (ys < self.image_height)
                & (col >= 0)
                & (col < self.model_width // cell_size)
                & (row >= 0)
                & (row < self.model_height // cell_size)
            )
        row_i = np.where(valid, row, -1).astype(np.int64)
        col_i = np.where(valid, col, -1).astype(np.int64)
        if row_i.ndim == 0:
            return int(row_i), int(col_i), bool(valid)
        return row_i, col_i, valid


def _unwrap(value: np.ndarray, like: Coord) -> Coord:
    """``value`` as a float when it and ``like`` (the input it was computed from, of the
    same shape) are 0-d, else as the array."""
    scalar = np.ndim(value) == 0 and np.ndim(like) == 0
    out: float | np.ndarray = float(value) if scalar else value
    return cast(Coord, out)  # the float / array choice above is the one Coord stands for


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"fit_geometry: {name} must be a positive integer, got {value!r}")
    return int(value)


def fit_geometry(image_h: int, image_w: int, model_h: int, model_w: int, mode: str) -> Geometry:
    """Geometry that fits an ``image_h x image_w`` image to a ``model_h x model_w`` input.

    Args:
        image_h: Image rows.
        image_w: Image columns.
        model_h: Network input rows.
        model_w: Network input columns.
        mode: ``stretch``, ``letterbox`` (fit inside, pad with 0) or ``center_crop``
            (cover, crop the centre).

    Returns:
        The :class:`Geometry`; :func:`preprocess` produces exactly the pixels it describes.

    Raises:
        ValueError: Non-positive sizes or an unknown mode.
    """
    ih = _positive_int("image_h", image_h)
    iw = _positive_int("image_w", image_w)
    mh = _positive_int("model_h", model_h)
    mw = _positive_int("model_w", model_w)
    if mode == "stretch":
        return Geometry(ih, iw, mh, mw, mode, mw / iw, mh / ih, 0.0, 0.0)
    if mode == "letterbox":
        scale = min(mw / iw, mh / ih)
        rw = min(mw, max(1, round(iw * scale)))
        rh = min(mh, max(1, round(ih * scale)))
    elif mode == "center_crop":
        scale = max(mw / iw, mh / ih)
        rw = max(mw, round(iw * scale))
        rh = max(mh, round(ih * scale))
    else:
        raise ValueError(
            f"fit_geometry: mode must be one of {', '.join(RESIZE_MODES)}, got {mode!r}"
        )
    # letterbox: positive padding offsets; center_crop: negative crop offsets.
    off_x = float((mw - rw) // 2) if rw <= mw else -float((rw - mw) // 2)
    off_y = float((mh - rh) // 2) if rh <= mh else -float((rh - mh) // 2)
    return Geometry(ih, iw, mh, mw, mode, rw / iw, rh / ih, off_x, off_y)


def _box_factor(height: int, width: int, target_h: int, target_w: int) -> int:
    """Integer box-reduction factor used before bilinear resizing (1: none).

    The largest ``k >= 2`` dividing both sides with ``k <= min(height / target_h,
    width / target_w) + 0.5`` (OpenCV's fast INTER_AREA path needs one integer factor for
    both axes; the + 0.5 allows a slight upsampling afterwards instead of aliasing).
    """
    limit = int(min(height / target_h, width / target_w) + 0.5)
    for k in range(limit, 1, -1):
        if height % k == 0 and width % k == 0:
            return k
    return 1


def _resize(image: np.ndarray, width: int, height: int, interpolation: str) -> np.ndarray:
    """Resize the full image to ``width x height`` (edges aligned)."""
    # image: [H, W, 3] -> [height, width, 3]
    if image.shape[1] == width and image.shape[0] == height:
        return image
    if interpolation == "nearest":
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)
    if interpolation == "area" and width <= image.shape[1] and height <= image.shape[0]:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if interpolation == "auto":
        # Anti-aliased downscaling at near-linear cost: an exact integer box reduction
        # (OpenCV's fast INTER_AREA path), then bilinear to the final size.
        k = _box_factor(image.shape[0], image.shape[1], height, width)
        if k > 1:
            # Halving steps first: OpenCV's 2x INTER_AREA is a dedicated SIMD path, about
            # 4x faster per output pixel than a 4x reduction (1080p to 1/4: 0.6 vs 1.9 ms
            # on the development machine). A 2x box of a 2x box is the 4x box, up to the
            # rounding of the intermediate uint8 image (at most 1 level).
            while k % 2 == 0:
                image = cv2.resize(
                    image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA
                )
                k //= 2
            if k > 1:
                image = cv2.resize(
                    image, (image.shape[1] // k, image.shape[0] // k), interpolation=cv2.INTER_AREA
                )
            if image.shape[1] == width and image.shape[0] == height:
                return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def preprocess(
    image: np.ndarray,
    geometry: Geometry,
    out: np.ndarray | None = None,
    interpolation: str = "auto",
) -> np.ndarray:
    """Fit an image to the network input as ``geometry`` describes.

    Args:
        image: ``[image_height, image_width, 3]`` uint8 or float32.
        geometry: From :func:`fit_geometry` for this image size.
        out: Optional C-contiguous ``[model_height, model_width, 3]`` array of the image's
            dtype to write into (it is returned).
        interpolation: ``auto`` (default: integer box reduction, powers of two as 2x
            steps, then bilinear; good anti-aliasing at low cost), ``area`` (OpenCV
            INTER_AREA when shrinking both axes, else bilinear; slower for non-integer
            factors), ``linear`` or ``nearest``.

    Returns:
        ``[model_height, model_width, 3]`` array of the input dtype.

    Raises:
        ImageError: ``geometry_mismatch`` when the image shape or ``out`` does not fit.
        ValueError: Unknown interpolation.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"preprocess: interpolation must be one of {', '.join(INTERPOLATIONS)}, "
            f"got {interpolation!r}"
        )
    g = geometry
    expected = (g.image_height, g.image_width, 3)
    if image.shape != expected:
        raise ImageError(
            "geometry_mismatch",
            f"preprocess: image shape {image.shape} does not match the geometry's "
            f"{expected} (image_height, image_width, 3)",
        )
    if image.dtype not in (np.uint8, np.float32):
        raise ImageError(
            "geometry_mismatch",
            f"preprocess: image dtype must be uint8 or float32, got {image.dtype}",
        )
    out_shape = (g.model_height, g.model_width, 3)
    if out is None:
        out = np.empty(out_shape, dtype=image.dtype)
    elif out.shape != out_shape or out.dtype != image.dtype or not out.flags.c_contiguous:
        raise ImageError(
            "geometry_mismatch",
            f"preprocess: out must be a C-contiguous {image.dtype} array of shape {out_shape}, "
            f"got {out.dtype} {out.shape}",
        )
    rw, rh = g.resized_width, g.resized_height
    resized = _resize(image, rw, rh, interpolation)  # [rh, rw, 3]
    if g.mode == "stretch":
        out[...] = resized
        return out
    ox, oy = round(g.offset_x), round(g.offset_y)
    # Source window of the resized image and destination window of the output.
    src_x0, dst_x0 = max(0, -ox), max(0, ox)
    src_y0, dst_y0 = max(0, -oy), max(0, oy)
    w = min(rw - src_x0, g.model_width - dst_x0)
    h = min(rh - src_y0, g.model_height - dst_y0)
    if g.mode == "letterbox":
        out.fill(0)
    out[dst_y0 : dst_y0 + h, dst_x0 : dst_x0 + w] = resized[
        src_y0 : src_y0 + h, src_x0 : src_x0 + w
    ]
    return out


class Preprocessor:
    """Per-camera preprocessing with the geometry (and optionally the buffer) kept.

    Args:
        model_height: Network input rows.
        model_width: Network input columns.
        mode: Resize mode (see :func:`fit_geometry`).
        interpolation: See :func:`preprocess`.
        reuse_output: Write every frame into the same output buffer (per image size and
            dtype). The array returned by the previous call is then overwritten by the
            next one; use only when each result is consumed before the next call.
    """

    def __init__(
        self,
        model_height: int,
        model_width: int,
        mode: str = "stretch",
        interpolation: str = "auto",
        reuse_output: bool = False,
    ) -> None:
        # Validate everything up front (a 1x1 image stands in for the real sizes).
        fit_geometry(1, 1, model_height, model_width, mode)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"Preprocessor: interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                f"got {interpolation!r}"
            )
        self.model_height = int(model_height)
        self.model_width = int(model_width)
        self.mode = mode
        self.interpolation = interpolation
        self.reuse_output = reuse_output
        self._geometry: Geometry | None = None
        self._buffer: np.ndarray | None = None

    def geometry_for(self, image_height: int, image_width: int) -> Geometry:
        """The geometry for an image size (cached for the last size seen)."""
        g = self._geometry
        if g is None or g.image_height != image_height or g.image_width != image_width:
            g = fit_geometry(
                image_height, image_width, self.model_height, self.model_width, self.mode
            )
            self._geometry = g
            self._buffer = None
        return g

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """Preprocess one ``[H, W, 3]`` image.

        Returns:
            ``(model_input [model_height, model_width, 3], geometry)``.
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(
                "geometry_mismatch", f"Preprocessor: expected an [H, W, 3] image, got {image.shape}"
            )
        g = self.geometry_for(image.shape[0], image.shape[1])
        out = None
        if self.reuse_output:
            if self._buffer is None or self._buffer.dtype != image.dtype:
                self._buffer = np.empty((g.model_height, g.model_width, 3), dtype=image.dtype)
            out = self._buffer
        return preprocess(image, g, out=out, interpolation=self.interpolation), g
