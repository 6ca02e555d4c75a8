"""`FrameResult` -> FeatureMap / TrackedPoints message fields.

The same field dictionaries fill rclpy message classes (the node: ``rvm_ros.msg``) and
rosbags message classes (the bag replay, off-robot tools) through `fill_message`.

Payloads are raw little-endian bytes of the chosen dtype (msg/FeatureMap.msg): the
features are converted once with numpy, never element by element in Python.
"""

from __future__ import annotations

import array
import importlib
import re
import sys
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import is_dataclass
from typing import Protocol, TypeVar

import numpy as np

from rvm_ros.errors import RvmRosError, key_differences
from rvm_ros.imaging.preprocess import Geometry
from rvm_ros.wire.dtypes import DTYPE_FLOAT16, DTYPE_FLOAT32, wire_code

__all__ = [
    "DTYPE_FLOAT16",
    "DTYPE_FLOAT32",
    "MessageFieldError",
    "feature_map_fields",
    "fill_message",
    "payload_bytes",
    "tracked_points_fields",
]


M = TypeVar("M")  # a message class of either flavour


class TracksLike(Protocol):
    """Tracked points of one frame (``rvm_ros.pipeline.ImageTracks`` satisfies it)."""

    ids: np.ndarray  # int32 [P]
    x: np.ndarray  # float32 [P], input-image pixels
    y: np.ndarray  # float32 [P]
    visible: np.ndarray  # bool [P]
    confidence: np.ndarray  # float32 [P]

    def __len__(self) -> int: ...


class FrameResultLike(Protocol):
    """What the message builders read of a processed frame.

    ``rvm_ros.pipeline.FrameResult`` satisfies it; the wire format does not depend on the
    processing package (the dependency points from ``pipeline`` to ``wire``).
    """

    camera: str
    seq: int
    features: np.ndarray  # [grid_height, grid_width, C]
    cls: np.ndarray  # [C]
    grid_height: int
    grid_width: int
    frames_since_reset: int
    state_reset: bool
    reset_reason: str
    reset_count: int
    geometry: Geometry
    cell_size: int
    pool: int
    model_id: str
    tracks: TracksLike | None


class MessageFieldError(RvmRosError, ValueError):
    """The fields do not match the message class (missing / unknown names)."""

    cause = "invalid_message_field"


def payload_bytes(values: np.ndarray) -> bytes:
    """Raw little-endian bytes of a float16 / float32 array, row-major.

    Args:
        values: Any shape, float16 or float32.

    Returns:
        ``values.size * itemsize`` bytes.

    Raises:
        ValueError: For another dtype.
    """
    dtype = np.dtype(values.dtype)
    if wire_code(dtype) is None:
        raise ValueError(f"payload dtype must be float16 or float32, got {dtype}")
    little = dtype.newbyteorder("<")
    return np.ascontiguousarray(values, dtype=little).tobytes()


def feature_map_fields(result: FrameResultLike) -> dict[str, object]:
    """Every FeatureMap field of a result except ``header``.

    Args:
        result: A processed frame.

    Returns:
        Field name -> value: plain Python ints / floats / bools / strs, and ``bytes``
        for the ``cls_token`` and ``features`` payloads (little endian, ``dtype``).

    Raises:
        ValueError: When the arrays do not agree with the result's grid size, or have
            a dtype other than float16 / float32.
    """
    feats = result.features
    cls = result.cls
    if feats.ndim != 3 or feats.shape[:2] != (result.grid_height, result.grid_width):
        raise ValueError(
            f"features of camera {result.camera!r} have shape {feats.shape}, expected "
            f"[{result.grid_height}, {result.grid_width}, C]"
        )
    channels = int(feats.shape[2])
    if cls.shape != (channels,):
        raise ValueError(
            f"cls token of camera {result.camera!r} has shape {cls.shape}, expected [{channels}]"
        )
    if cls.dtype != feats.dtype:
        raise ValueError(f"cls dtype {cls.dtype} differs from features dtype {feats.dtype}")
    code = wire_code(np.dtype(feats.dtype))
    if code is None:
        raise ValueError(f"feature dtype must be float16 or float32, got {feats.dtype}")
    g = result.geometry
    return {
        "camera": result.camera,
        "model_id": result.model_id,
        "grid_height": int(result.grid_height),
        "grid_width": int(result.grid_width),
        "channels": channels,
        "dtype": code,
        "cls_token": payload_bytes(cls),
        "features": payload_bytes(feats),
        "frames_since_reset": int(result.frames_since_reset),
        "state_reset": bool(result.state_reset),
        "reset_reason": result.reset_reason,
        "reset_count": int(result.reset_count),
        "image_height": int(g.image_height),
        "image_width": int(g.image_width),
        "model_height": int(g.model_height),
        "model_width": int(g.model_width),
        "resize_mode": str(g.mode),
        "scale_x": float(g.scale_x),
        "scale_y": float(g.scale_y),
        "offset_x": float(g.offset_x),
        "offset_y": float(g.offset_y),
        "cell_size": int(result.cell_size),
        "pool": int(result.pool),
    }


def tracked_points_fields(result: FrameResultLike) -> dict[str, object]:
    """Every TrackedPoints field of a result except ``header``.

    Args:
        result: A processed frame (with ``tracks``; None gives no points).

    Returns:
        ``camera``, ``seq`` and ``points``: a list of dicts ``id, x, y, visible,
        confidence`` (plain Python values) in ascending id order.
    """
    points: list[dict[str, object]] = []
    tr = result.tracks
    if tr is not None and len(tr):
        order = np.argsort(tr.ids, kind="stable")
        ids = tr.ids[order].tolist()
        xs = tr.x[order].astype(np.float64).tolist()
        ys = tr.y[order].astype(np.float64).tolist()
        vis = tr.visible[order].tolist()
        conf = tr.confidence[order].astype(np.float64).tolist()
        points = [
            {"id": i, "x": x, "y": y, "visible": bool(v), "confidence": c}
            for i, x, y, v, c in zip(ids, xs, ys, vis, conf, strict=True)
        ]
    return {"camera": result.camera, "seq": int(result.seq), "points": points}


# ---------------------------------------------------------------- message classes


def _is_rclpy_class(msg_cls: type) -> bool:
    return hasattr(msg_cls, "get_fields_and_field_types")


def _is_rosbags_class(msg_cls: type) -> bool:
    return is_dataclass(msg_cls) and hasattr(msg_cls, "__msgtype__")


def _rclpy_fields(msg_cls: type) -> dict[str, str]:
    return dict(msg_cls.get_fields_and_field_types())  # type: ignore[attr-defined]


def _rosbags_fields(msg_cls: type) -> dict[str, str]:
    return {
        f.name: str(f.type)
        for f in dataclass_fields(msg_cls)
        if not str(f.type).startswith("ClassVar")
    }


_RCLPY_NESTED = re.compile(r"^(?:sequence<|)([a-zA-Z0-9_]+)/([A-Za-z0-9_]+)(?:, \d+)?>?$")
_RCLPY_ARRAY = re.compile(r"^([a-zA-Z0-9_]+)/([A-Za-z0-9_]+)\[\d+\]$")


def _rclpy_nested_class(type_str: str) -> type | None:
    """``sequence<pkg/Msg>`` / ``pkg/Msg`` / ``pkg/Msg[3]`` -> the rclpy class."""
    m = _RCLPY_NESTED.match(type_str) or _RCLPY_ARRAY.match(type_str)
    if m is None:
        return None
    module = importlib.import_module(f"{m.group(1)}.msg")
    return getattr(module, m.group(2), None)


def _rosbags_nested_class(msg_cls: type, type_str: str) -> type | None:
    """``list[pkg__msg__Msg]`` / ``pkg__msg__Msg`` -> the rosbags class."""
    m = re.match(r"^(?:list\[)?([A-Za-z0-9_]+__msg__[A-Za-z0-9_]+)\]?$", type_str)
    if m is None:
        return None
    module = sys.modules.get(msg_cls.__module__)
    return getattr(module, m.group(1), None) if module is not None else None


def _field_types(msg_cls: type) -> tuple[bool, dict[str, str]]:
    """``(is rclpy, field name -> type string)`` of a message class."""
    if _is_rclpy_class(msg_cls):
        return True, _rclpy_fields(msg_cls)
    if _is_rosbags_class(msg_cls):
        return False, _rosbags_fields(msg_cls)
    raise TypeError(f"{msg_cls!r} is neither an rclpy message class nor a rosbags message class")


def _is_nested(value: object) -> bool:
    """A dict (a nested message) or a non-empty list of dicts (a sequence of them)."""
    return isinstance(value, Mapping) or (
        isinstance(value, list) and bool(value) and isinstance(value[0], Mapping)
    )


def _byte_field(
    value: bytes | bytearray | memoryview, rclpy: bool
) -> array.array[int] | np.ndarray:
    """A ``uint8[]`` value in the form each flavour takes fastest."""
    if rclpy:
        buf = array.array("B")
        buf.frombytes(value)
        return buf  # typecode 'B': taken without a per-element check
    return np.frombuffer(value, dtype=np.uint8)


def _nested_class(
    msg_cls: type, name: str, type_str: str, rclpy: bool, nested: Mapping[str, type] | None
) -> type:
    """The message class of nested field ``name`` (given, or found from its type string)."""
    sub_cls = (nested or {}).get(name)
    if sub_cls is None:
        sub_cls = (
            _rclpy_nested_class(type_str) if rclpy else _rosbags_nested_class(msg_cls, type_str)
        )
    if sub_cls is None:
        raise MessageFieldError(
            f"cannot find the message class of field {name!r} ({type_str}); pass it in `nested`"
        )
    return sub_cls


def _build(
    msg_cls: type[M],
    fields: Mapping[str, object],
    header: object,
    nested: Mapping[str, type] | None,
) -> M:
    rclpy, types = _field_types(msg_cls)
    given = dict(fields)
    if "header" in types:
        if "header" in given:
            raise MessageFieldError("pass the header as fill_message's header argument")
        given["header"] = header
    parts = key_differences(set(types), set(given), "missing", "unknown", limit=None)
    if parts:
        name = getattr(msg_cls, "__msgtype__", None) or msg_cls.__name__
        raise MessageFieldError(f"fields do not match {name}: {'; '.join(parts)}")
    kwargs: dict[str, object] = {}
    for name, value in given.items():
        if isinstance(value, (bytes, bytearray, memoryview)):
            kwargs[name] = _byte_field(value, rclpy)
        elif _is_nested(value):
            sub_cls = _nested_class(msg_cls, name, types[name], rclpy, nested)
            if isinstance(value, Mapping):
                kwargs[name] = _build(sub_cls, value, None, None)
            elif isinstance(value, list):
                kwargs[name] = [_build(sub_cls, item, None, None) for item in value]
        else:
            kwargs[name] = value
    return msg_cls(**kwargs)


def fill_message(
    msg_cls: type[M],
    fields: Mapping[str, object],
    header: object = None,
    nested: Mapping[str, type] | None = None,
) -> M:
    """Build a message from a field dictionary (rclpy and rosbags classes alike).

    ``bytes`` values become ``array.array('B')`` for rclpy (the fast path of its
    ``uint8[]`` setters) and ``np.uint8`` arrays for rosbags; dicts and lists of dicts
    become nested messages (their classes found from the message definition, or
    given in ``nested``).

    Args:
        msg_cls: e.g. ``rvm_ros.msg.FeatureMap`` or ``typestore.types["rvm_ros/msg/FeatureMap"]``.
        fields: Every field except ``header`` (from `feature_map_fields` /
            `tracked_points_fields`).
        header: The header object of the message's flavour (``std_msgs.msg.Header`` for
            rclpy, the typestore's Header for rosbags), typically `FrameResult.header`.
        nested: Field name -> message class for nested fields, when needed.

    Returns:
        The message.

    Raises:
        MessageFieldError: When the fields do not match the message definition.
        TypeError: When ``msg_cls`` is not a message class.
    """
    return _build(msg_cls, fields, header, nested)
