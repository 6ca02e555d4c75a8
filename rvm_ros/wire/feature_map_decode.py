"""Planner side: FeatureMap messages to numpy or torch arrays.

Works on rclpy messages (``rvm_ros.msg.FeatureMap``) and on rosbags messages alike (any
object with the fields of ``msg/FeatureMap.msg``)::

    maps = feature_map_to_numpy(msg)          # FeatureMapArrays
    maps.features                             # [h, w, C] float32 / float16 as sent
    row, col, valid = pixel_to_cell(maps, u, v)
    toks = tokens(maps)                       # [1 + h*w, C], CLS first
    feats, cls = maps.to_torch("cuda")

The arrays returned by :func:`feature_map_to_numpy` are read-only views of the message
payload where possible (no copy); copy them to write into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from rvm_ros.errors import RvmRosError
from rvm_ros.imaging.image_msg import data_bytes, data_length
from rvm_ros.imaging.preprocess import RESIZE_MODES, Geometry
from rvm_ros.stamps import stamp_ns as stamp_to_ns
from rvm_ros.wire.dtypes import DTYPE_FLOAT16, DTYPE_FLOAT32, WIRE_DTYPES, dtype_code

if TYPE_CHECKING:
    import torch

__all__ = [
    "DTYPE_FLOAT16",
    "DTYPE_FLOAT32",
    "FeatureMapArrays",
    "FeatureMapError",
    "dtype_code",
    "feature_map_payload",
    "feature_map_to_numpy",
    "pixel_to_cell",
    "tokens",
]


class FeatureMapError(RvmRosError, ValueError):
    """A FeatureMap message that cannot be read.

    Attributes:
        cause: Short stable key: ``invalid_field``, ``unknown_dtype``, ``size_mismatch``,
            ``empty``, ``bad_geometry``.
    """

    cause = "invalid_feature_map"

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause

    def __reduce__(self) -> tuple[type[FeatureMapError], tuple[str, str]]:
        return (type(self), (self.cause, str(self)))


@dataclass(frozen=True, eq=False)
class FeatureMapArrays:
    """One FeatureMap as arrays.

    Holds arrays, so instances compare by identity (``eq=False``).

    Attributes:
        features: ``[h, w, C]`` float32 or float16 (as sent), row-major grid.
        cls: ``[C]`` CLS / global token, same dtype.
        geometry: Input-image pixel <-> network pixel mapping.
        cell_size: Network pixels per cell side (patch size times pool).
        pool: Average pooling applied to the patch grid.
        camera: Camera name.
        stamp_ns: Header stamp in nanoseconds.
        model_id: Model identity.
        frames_since_reset: Frames since the camera's state was last reset.
        state_reset: Whether the state was reset before this frame.
        reset_reason: Why (empty when not reset).
        frame_id: Header frame id.
    """

    features: np.ndarray
    cls: np.ndarray
    geometry: Geometry
    cell_size: int
    pool: int
    camera: str
    stamp_ns: int
    model_id: str
    frames_since_reset: int
    state_reset: bool
    reset_reason: str = ""
    frame_id: str = ""

    @property
    def grid_height(self) -> int:
        """Rows of the feature grid."""
        return int(self.features.shape[0])

    @property
    def grid_width(self) -> int:
        """Columns of the feature grid."""
        return int(self.features.shape[1])

    @property
    def channels(self) -> int:
        """Channels C."""
        return int(self.features.shape[2])

    def to_torch(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The features and CLS token as torch tensors (copies).

        Args:
            device: Target device (default CPU).
            dtype: Target dtype (default: as sent, float32 or float16).

        Returns:
            ``(features [h, w, C], cls [C])``.
        """
        import torch

        feats = torch.from_numpy(np.array(self.features, copy=True))
        cls = torch.from_numpy(np.array(self.cls, copy=True))
        return feats.to(device=device, dtype=dtype), cls.to(device=device, dtype=dtype)


def _get(msg: object, name: str) -> Any:  # Any: the field's own type
    try:
        return getattr(msg, name)
    except AttributeError:
        raise FeatureMapError("invalid_field", f"FeatureMap has no field '{name}'") from None


def _uint(msg: object, name: str) -> int:
    value = _get(msg, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise FeatureMapError(
            "invalid_field", f"FeatureMap.{name} must be a non-negative integer, got {value!r}"
        )
    return int(value)


def _float(msg: object, name: str) -> float:
    value = float(_get(msg, name))
    if not np.isfinite(value):
        raise FeatureMapError("bad_geometry", f"FeatureMap.{name} is not finite ({value})")
    return value


def _payload(
    msg: object, name: str, count: int, dtype: np.dtype[np.floating], detail: str
) -> np.ndarray:
    data = _get(msg, name)
    try:
        length = data_length(data, f"FeatureMap.{name}")
    except ValueError as exc:
        raise FeatureMapError("invalid_field", str(exc)) from None
    expected = count * dtype.itemsize
    if length != expected:
        raise FeatureMapError(
            "size_mismatch",
            f"FeatureMap.{name} has {length} bytes, expected {expected} = {detail} x "
            f"{dtype.itemsize} bytes ({dtype.name})",
        )
    try:
        raw = data_bytes(data, f"FeatureMap.{name}")
    except ValueError as exc:
        raise FeatureMapError("invalid_field", str(exc)) from None
    values = raw.view(dtype)
    return values if dtype.isnative else values.astype(dtype.newbyteorder("="))


def feature_map_to_numpy(msg: object) -> FeatureMapArrays:
    """Read a FeatureMap message (rclpy or rosbags) into arrays.

    Args:
        msg: Object with the fields of ``msg/FeatureMap.msg``.

    Returns:
        :class:`FeatureMapArrays` (``features``/``cls`` may be read-only views of the
        payload).

    Raises:
        FeatureMapError: ``unknown_dtype``, ``empty`` (zero grid or channels),
            ``size_mismatch`` (payload length differs from grid * channels * itemsize),
            ``bad_geometry`` (unknown resize mode, non-positive sizes or scales),
            ``invalid_field``.
    """
    h, w, c, dtype = _grid(msg)
    cls = _payload(msg, "cls_token", c, dtype, f"channels {c}")
    feats = _payload(
        msg, "features", h * w * c, dtype, f"grid_height {h} x grid_width {w} x channels {c}"
    ).reshape(h, w, c)
    geometry = _geometry(msg)
    cell_size = _uint(msg, "cell_size")
    if cell_size == 0:
        raise FeatureMapError("bad_geometry", "FeatureMap.cell_size is 0")
    header = _get(msg, "header")
    stamp = header.stamp
    return FeatureMapArrays(
        features=feats,
        cls=cls,
        geometry=geometry,
        cell_size=cell_size,
        pool=_uint(msg, "pool"),
        camera=str(_get(msg, "camera")),
        stamp_ns=stamp_to_ns(stamp),
        model_id=str(_get(msg, "model_id")),
        frames_since_reset=_uint(msg, "frames_since_reset"),
        state_reset=bool(_get(msg, "state_reset")),
        reset_reason=str(_get(msg, "reset_reason")),
        frame_id=str(header.frame_id),
    )


def _grid(msg: object) -> tuple[int, int, int, np.dtype[np.floating]]:
    """``(grid_height, grid_width, channels, payload dtype)``, all non-empty and known."""
    h = _uint(msg, "grid_height")
    w = _uint(msg, "grid_width")
    c = _uint(msg, "channels")
    code = _uint(msg, "dtype")
    if code not in WIRE_DTYPES:
        raise FeatureMapError(
            "unknown_dtype",
            f"FeatureMap.dtype {code} is unknown (0 = float32, 1 = float16)",
        )
    if h == 0 or w == 0 or c == 0:
        raise FeatureMapError(
            "empty", f"FeatureMap grid is empty: grid_height {h}, grid_width {w}, channels {c}"
        )
    return h, w, c, WIRE_DTYPES[code]


def _geometry(msg: object) -> Geometry:
    """The image <-> network pixel mapping the message states, checked."""
    mode = str(_get(msg, "resize_mode"))
    if mode not in RESIZE_MODES:
        raise FeatureMapError(
            "bad_geometry",
            f"FeatureMap.resize_mode {mode!r} is not one of {', '.join(RESIZE_MODES)}",
        )
    sizes = {
        n: _uint(msg, n) for n in ("image_height", "image_width", "model_height", "model_width")
    }
    for name, value in sizes.items():
        if value == 0:
            raise FeatureMapError("bad_geometry", f"FeatureMap.{name} is 0")
    scale_x, scale_y = _float(msg, "scale_x"), _float(msg, "scale_y")
    if scale_x <= 0 or scale_y <= 0:
        raise FeatureMapError(
            "bad_geometry",
            f"FeatureMap scales must be > 0, got scale_x {scale_x}, scale_y {scale_y}",
        )
    return Geometry(
        image_height=sizes["image_height"],
        image_width=sizes["image_width"],
        model_height=sizes["model_height"],
        model_width=sizes["model_width"],
        mode=mode,
        scale_x=scale_x,
        scale_y=scale_y,
        offset_x=_float(msg, "offset_x"),
        offset_y=_float(msg, "offset_y"),
    )


@overload
def pixel_to_cell(arrays: FeatureMapArrays, x: float, y: float) -> tuple[int, int, bool]: ...
@overload
def pixel_to_cell(
    arrays: FeatureMapArrays, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def pixel_to_cell(
    arrays: FeatureMapArrays, x: float | np.ndarray, y: float | np.ndarray
) -> tuple[int, int, bool] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature cell of input-image pixels.

    Args:
        arrays: The feature map.
        x: Image x (pixel centres at integer + 0.5; float or array).
        y: Image y.

    Returns:
        ``(row, col, valid)``; ``valid`` is False for points outside the image, cropped
        away, or outside the grid; row and col are -1 there.
    """
    row, col, valid = arrays.geometry.image_to_cell(x, y, arrays.cell_size)
    in_grid = (np.asarray(row) < arrays.grid_height) & (np.asarray(col) < arrays.grid_width) & valid
    if np.ndim(in_grid) == 0:
        ok = bool(in_grid)
        return (int(row), int(col), True) if ok else (-1, -1, False)
    return np.where(in_grid, row, -1), np.where(in_grid, col, -1), in_grid


def tokens(arrays: FeatureMapArrays, include_cls: bool = True) -> np.ndarray:
    """The feature map as a token sequence.

    Args:
        arrays: The feature map.
        include_cls: Put the CLS token first.

    Returns:
        ``[1 + h*w, C]`` (or ``[h*w, C]``), row-major grid order, dtype as sent.
    """
    grid = arrays.features.reshape(-1, arrays.channels)  # [h*w, C]
    if not include_cls:
        return np.array(grid, copy=True)
    return np.concatenate([arrays.cls[None, :], grid], axis=0)  # [1 + h*w, C]


def feature_map_payload(
    features: np.ndarray, cls: np.ndarray, dtype: object = np.float32
) -> tuple[bytes, bytes]:
    """Little-endian payload bytes for a FeatureMap.

    Args:
        features: ``[h, w, C]``.
        cls: ``[C]``.
        dtype: ``float32`` or ``float16`` (numpy / torch dtype or name).

    Returns:
        ``(cls_token_bytes, feature_bytes)``.

    Raises:
        ValueError: Shapes that do not agree or an unsupported dtype.
    """
    wire = WIRE_DTYPES[dtype_code(dtype)]
    feats = np.asarray(features)
    cls_arr = np.asarray(cls)
    if feats.ndim != 3 or cls_arr.shape != (feats.shape[2],):
        raise ValueError(
            f"feature_map_payload: expected features [h, w, C] and cls [C], got "
            f"{feats.shape} and {cls_arr.shape}"
        )
    return cls_arr.astype(wire).tobytes(), np.ascontiguousarray(feats, dtype=wire).tobytes()
