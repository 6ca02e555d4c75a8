"""SceneTokens on the wire: a step -> message (node, replay), a message -> torch (planner).

Building (``scene_tokens_message``) works on rclpy and rosbags classes alike: the caller
hands the message classes in (:class:`SceneTokensClasses`), so this module imports no
ROS. Reading (:func:`scene_tokens_to_torch`) takes any object with the fields of
``msg/SceneTokens.msg`` and returns what a planner consumes::

    batch = scene_tokens_to_torch(msg, "cuda")
    batch["img_feats"]       # [N_cam, C, h, w]   (CLS excluded), dtype as sent
    batch["cls"]             # [N_cam, C]
    batch["projection_mat"]  # [N_cam, 4, 4] float32, base frame -> network pixels
    batch["image_wh"]        # [N_cam, 2] float32, network input (width, height)
    batch["timestamp"]       # float64 scalar tensor, seconds
    batch["valid"]           # [N_cam] bool

On the CPU the token tensors are views of the message payload (no copy).
"""

from __future__ import annotations

import array
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from rvm_ros.errors import RvmRosError
from rvm_ros.imaging.image_msg import data_bytes
from rvm_ros.stamps import header_ns, split_ns
from rvm_ros.wire.dtypes import WIRE_DTYPES, wire_code

if TYPE_CHECKING:
    import torch

__all__ = [
    "CameraGeometryMsg",
    "SceneTokensArrays",
    "SceneTokensClasses",
    "SceneTokensError",
    "arrays_to_torch",
    "scene_tokens_message",
    "scene_tokens_to_numpy",
    "scene_tokens_to_torch",
]


class SceneTokensError(RvmRosError, ValueError):
    """A SceneTokens message whose fields do not agree (sizes, dtype, camera lists)."""

    cause = "invalid_scene_tokens"


class _SceneGeometryLike(Protocol):
    @property
    def intrinsics(self) -> np.ndarray: ...
    @property
    def intrinsics_network(self) -> np.ndarray: ...
    @property
    def intrinsics_cell(self) -> np.ndarray: ...
    @property
    def camera_to_base(self) -> np.ndarray: ...
    @property
    def projection(self) -> np.ndarray: ...
    @property
    def distortion_model(self) -> str: ...
    @property
    def distortion(self) -> tuple[float, ...]: ...
    @property
    def extrinsics_source(self) -> str: ...


class _GeometryLike(Protocol):
    @property
    def image_height(self) -> int: ...
    @property
    def image_width(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def scale_x(self) -> float: ...
    @property
    def scale_y(self) -> float: ...
    @property
    def offset_x(self) -> float: ...
    @property
    def offset_y(self) -> float: ...


class SceneCameraLike(Protocol):
    """One camera of a step (``rvm_ros.pipeline.scene.SceneCamera`` satisfies it)."""

    @property
    def camera(self) -> str: ...
    @property
    def stamp_ns(self) -> int: ...
    @property
    def frame_id(self) -> str: ...
    @property
    def valid(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def has_tokens(self) -> bool: ...
    @property
    def state_reset(self) -> bool: ...
    @property
    def frames_since_reset(self) -> int: ...
    @property
    def geometry(self) -> _GeometryLike | None: ...
    @property
    def scene(self) -> _SceneGeometryLike: ...


class SceneStepLike(Protocol):
    """A step (``rvm_ros.pipeline.scene.SceneStep`` satisfies it)."""

    @property
    def seq(self) -> int: ...
    @property
    def stamp_ns(self) -> int: ...
    @property
    def cameras(self) -> tuple[SceneCameraLike, ...]: ...
    @property
    def tokens(self) -> np.ndarray: ...  # [N_cam, 1 + h*w, C]
    @property
    def grid_height(self) -> int: ...
    @property
    def grid_width(self) -> int: ...
    @property
    def model_height(self) -> int: ...
    @property
    def model_width(self) -> int: ...
    @property
    def cell_size(self) -> int: ...
    @property
    def model_id(self) -> str: ...


class CameraGeometryMsg(Protocol):
    """A built CameraGeometry message: the fields refreshed from step to step."""

    header: object
    valid: bool
    invalid_reason: str
    has_tokens: bool
    state_reset: bool
    frames_since_reset: int


@dataclass(frozen=True)
class SceneTokensClasses:
    """The message classes of one flavour (rclpy or rosbags).

    Attributes:
        scene: ``SceneTokens``.
        geometry: ``CameraGeometry``.
        header: ``std_msgs/Header``.
        time: ``builtin_interfaces/Time``.
        rclpy: True for rclpy classes (``uint8[]`` as ``array.array``), False for
            rosbags (numpy arrays).
    """

    scene: Callable[..., Any]  # Any: the flavour's SceneTokens (node publishes, replay writes)
    geometry: Callable[..., CameraGeometryMsg]
    header: Callable[..., object]
    time: Callable[..., object]
    rclpy: bool


def _time(classes: SceneTokensClasses, stamp_ns: int) -> object:
    sec, nsec = split_ns(stamp_ns)
    return classes.time(sec=sec, nanosec=nsec)


def _flat(m: np.ndarray, n: int) -> np.ndarray:
    return np.ascontiguousarray(m, dtype=np.float64).reshape(n)


def _geometry_message(
    classes: SceneTokensClasses, step: SceneStepLike, cam: SceneCameraLike
) -> CameraGeometryMsg:
    g, s = cam.geometry, cam.scene
    dist: array.array[float] | np.ndarray = (
        array.array("d", s.distortion)
        if classes.rclpy
        else np.asarray(s.distortion, dtype=np.float64)
    )
    return classes.geometry(
        header=classes.header(stamp=_time(classes, cam.stamp_ns), frame_id=cam.frame_id),
        camera=cam.camera,
        valid=bool(cam.valid),
        invalid_reason=cam.reason,
        has_tokens=bool(cam.has_tokens),
        state_reset=bool(cam.state_reset),
        frames_since_reset=int(cam.frames_since_reset),
        image_height=int(g.image_height) if g is not None else 0,
        image_width=int(g.image_width) if g is not None else 0,
        model_height=int(step.model_height),
        model_width=int(step.model_width),
        grid_height=int(step.grid_height),
        grid_width=int(step.grid_width),
        cell_size=int(step.cell_size),
        resize_mode=g.mode if g is not None else "",
        scale_x=float(g.scale_x) if g is not None else float("nan"),
        scale_y=float(g.scale_y) if g is not None else float("nan"),
        offset_x=float(g.offset_x) if g is not None else float("nan"),
        offset_y=float(g.offset_y) if g is not None else float("nan"),
        intrinsics=_flat(s.intrinsics, 9),
        intrinsics_network=_flat(s.intrinsics_network, 9),
        intrinsics_cell=_flat(s.intrinsics_cell, 9),
        distortion_model=s.distortion_model,
        distortion=dist,
        camera_to_base=_flat(s.camera_to_base, 16),
        projection=_flat(s.projection, 16),
        extrinsics_source=s.extrinsics_source,
    )


def scene_tokens_message(
    classes: SceneTokensClasses,
    step: SceneStepLike,
    base_frame: str,
    geometry_cache: dict[str, tuple[tuple[object, ...], CameraGeometryMsg]] | None = None,
) -> Any:  # Any: an instance of ``classes.scene`` (rclpy or rosbags flavour)
    """The SceneTokens message of a step.

    Args:
        classes: Message classes of the flavour to build.
        step: The assembled step.
        base_frame: ``header.frame_id``: the frame the transforms refer to.
        geometry_cache: A dict kept by the caller between steps: each camera's
            CameraGeometry message is then built once per geometry and only its
            per-step fields are updated. The messages are reused, so use it only when
            each message is published (copied) before the next one is built, as the
            node does; never when messages are kept (bag writing in another thread).

    Returns:
        A ``classes.scene`` instance.

    Raises:
        SceneTokensError: Tokens of another shape or dtype than the step says.
    """
    tokens, code = _checked_tokens(step)
    payload = _tokens_payload(classes, step, tokens)
    geoms = _camera_geometries(classes, step, geometry_cache)
    msg = classes.scene(
        header=classes.header(stamp=_time(classes, step.stamp_ns), frame_id=base_frame),
        seq=int(step.seq),
        model_id=step.model_id,
        cameras=[c.camera for c in step.cameras],
        geometry=geoms,
        complete=all(c.valid for c in step.cameras),
        grid_height=int(step.grid_height),
        grid_width=int(step.grid_width),
        channels=int(tokens.shape[2]),
        model_height=int(step.model_height),
        model_width=int(step.model_width),
        cell_size=int(step.cell_size),
        dtype=code,
        **({} if classes.rclpy else {"tokens": payload}),
    )
    if classes.rclpy:
        # Set after construction: the generated constructor copies an array.array element
        # by element (milliseconds for a megabyte); the setter keeps it as it is.
        msg.tokens = payload
    return msg


def _checked_tokens(step: SceneStepLike) -> tuple[np.ndarray, int]:
    """``(tokens [N_cam, 1 + h*w, C], wire dtype code)`` once their shape and dtype agree
    with the step."""
    tokens = step.tokens
    n_cam = len(step.cameras)
    n_tok = 1 + step.grid_height * step.grid_width
    if tokens.ndim != 3 or tokens.shape[:2] != (n_cam, n_tok):
        raise SceneTokensError(f"tokens have shape {tokens.shape}, expected [{n_cam}, {n_tok}, C]")
    code = wire_code(tokens.dtype)
    if code is None:
        raise SceneTokensError(f"tokens must be float16 or float32, got {tokens.dtype}")
    return tokens, code


def _tokens_payload(
    classes: SceneTokensClasses, step: SceneStepLike, tokens: np.ndarray
) -> array.array[int] | np.ndarray:
    """The little-endian token bytes as the flavour's ``uint8[]`` (no copy where the step
    already holds them in an ``array.array``)."""
    little = tokens.dtype.newbyteorder("<")
    raw = np.ascontiguousarray(tokens, dtype=little).data.cast("B")
    given = getattr(step, "payload", None)
    if (
        classes.rclpy
        and isinstance(given, array.array)
        and len(given) == tokens.nbytes
        and np.may_share_memory(tokens, given)
    ):
        return given  # the tokens were written into it: no copy
    if classes.rclpy:
        payload = array.array("B")
        payload.frombytes(raw)
        return payload
    return np.frombuffer(raw, dtype=np.uint8)


def _camera_geometries(
    classes: SceneTokensClasses,
    step: SceneStepLike,
    geometry_cache: dict[str, tuple[tuple[object, ...], CameraGeometryMsg]] | None,
) -> list[CameraGeometryMsg]:
    """One CameraGeometry message per camera, reused from the cache where it still fits."""
    geoms = []
    for cam in step.cameras:
        key = (cam.camera, cam.scene, cam.geometry, cam.frame_id, step.grid_height,
               step.grid_width, step.model_height, step.model_width)  # fmt: skip
        cached = geometry_cache.get(cam.camera) if geometry_cache is not None else None
        if cached is not None and cached[0] == key:
            geom = cached[1]
            # Only what changes from step to step (the rest is the same objects).
            geom.header = classes.header(stamp=_time(classes, cam.stamp_ns), frame_id=cam.frame_id)
            geom.valid = bool(cam.valid)
            geom.invalid_reason = cam.reason
            geom.has_tokens = bool(cam.has_tokens)
            geom.state_reset = bool(cam.state_reset)
            geom.frames_since_reset = int(cam.frames_since_reset)
        else:
            geom = _geometry_message(classes, step, cam)
            if geometry_cache is not None:
                geometry_cache[cam.camera] = (key, geom)
        geoms.append(geom)
    return geoms


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, eq=False)
class SceneTokensArrays:
    """A SceneTokens message as numpy arrays (views of the payload where possible).

    Attributes:
        cameras: Camera names in order.
        stamp_ns: Step stamp.
        camera_stamps_ns: ``[N_cam]`` int64 per-camera image stamps (0: no frame).
        tokens: ``[N_cam, 1 + h*w, C]`` as sent (float16 / float32).
        valid: ``[N_cam]`` bool.
        has_tokens: ``[N_cam]`` bool.
        invalid_reason: Per camera, ``""`` when valid.
        projection: ``[N_cam, 4, 4]`` float64, base -> network pixels.
        intrinsics_network: ``[N_cam, 3, 3]`` float64.
        intrinsics_cell: ``[N_cam, 3, 3]`` float64.
        camera_to_base: ``[N_cam, 4, 4]`` float64.
        image_size: ``[N_cam, 2]`` int64 input image ``(width, height)`` (0 when unknown).
        scale: ``[N_cam, 2]`` float64 ``(scale_x, scale_y)``: image -> network pixels.
        offset: ``[N_cam, 2]`` float64 ``(offset_x, offset_y)``.
        grid_height: h.
        grid_width: w.
        model_height: Network input rows.
        model_width: Network input columns.
        cell_size: Network pixels per cell.
        base_frame: The header's frame id.
        seq: The message's step counter.
    """

    cameras: tuple[str, ...]
    stamp_ns: int
    camera_stamps_ns: np.ndarray
    tokens: np.ndarray
    valid: np.ndarray
    has_tokens: np.ndarray
    invalid_reason: tuple[str, ...]
    projection: np.ndarray
    intrinsics_network: np.ndarray
    intrinsics_cell: np.ndarray
    camera_to_base: np.ndarray
    image_size: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    grid_height: int
    grid_width: int
    model_height: int
    model_width: int
    cell_size: int
    base_frame: str
    seq: int


def scene_tokens_to_numpy(msg: Any) -> SceneTokensArrays:  # Any: SceneTokens of either flavour
    """Check a SceneTokens message and view it as arrays.

    Raises:
        SceneTokensError: Unknown dtype, payload size not ``N_cam * (1 + h*w) * C``
            elements, ``geometry`` not one per camera (in the same order).
    """
    cams = tuple(str(c) for c in msg.cameras)
    geoms = list(msg.geometry)
    if len(geoms) != len(cams) or any(g.camera != c for g, c in zip(geoms, cams, strict=False)):
        raise SceneTokensError(
            f"SceneTokens: geometry cameras {[g.camera for g in geoms]} do not match "
            f"cameras {list(cams)}"
        )
    dtype = WIRE_DTYPES.get(int(msg.dtype))
    if dtype is None:
        raise SceneTokensError(f"SceneTokens: unknown dtype {msg.dtype}")
    h, w, c = int(msg.grid_height), int(msg.grid_width), int(msg.channels)
    n_tok = 1 + h * w
    raw = data_bytes(msg.tokens, "SceneTokens.tokens")
    expected = len(cams) * n_tok * c * dtype.itemsize
    if raw.size != expected:
        raise SceneTokensError(
            f"SceneTokens: tokens hold {raw.size} bytes, expected {expected} "
            f"({len(cams)} cameras x {n_tok} tokens x {c} channels x {dtype.itemsize})"
        )
    tokens = raw.view(dtype).reshape(len(cams), n_tok, c)
    if sys.byteorder != "little":  # pragma: no cover - every supported robot is little endian
        tokens = tokens.astype(tokens.dtype.newbyteorder("="))
    n = len(cams)

    def stack(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if not n:
            return np.zeros((0, *shape))
        return np.stack([np.asarray(getattr(g, name), dtype=np.float64) for g in geoms]).reshape(
            n, *shape
        )

    return SceneTokensArrays(
        cameras=cams,
        stamp_ns=header_ns(msg.header),
        camera_stamps_ns=np.array([header_ns(g.header) for g in geoms], dtype=np.int64),
        tokens=tokens,
        valid=np.array([bool(g.valid) for g in geoms], dtype=bool),
        has_tokens=np.array([bool(g.has_tokens) for g in geoms], dtype=bool),
        invalid_reason=tuple(str(g.invalid_reason) for g in geoms),
        projection=stack("projection", (4, 4)),
        intrinsics_network=stack("intrinsics_network", (3, 3)),
        intrinsics_cell=stack("intrinsics_cell", (3, 3)),
        camera_to_base=stack("camera_to_base", (4, 4)),
        image_size=np.array(
            [[int(g.image_width), int(g.image_height)] for g in geoms], dtype=np.int64
        ).reshape(n, 2),
        scale=np.array(
            [[float(g.scale_x), float(g.scale_y)] for g in geoms], dtype=np.float64
        ).reshape(n, 2),
        offset=np.array(
            [[float(g.offset_x), float(g.offset_y)] for g in geoms], dtype=np.float64
        ).reshape(n, 2),
        grid_height=h,
        grid_width=w,
        model_height=int(msg.model_height),
        model_width=int(msg.model_width),
        cell_size=int(msg.cell_size),
        base_frame=str(msg.header.frame_id),
        seq=int(msg.seq),
    )


def arrays_to_torch(
    arrays: SceneTokensArrays, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> dict[str, Any]:  # Any: tensors and the camera names; datasets add their own keys
    """The planner dict of :func:`scene_tokens_to_torch` from already decoded arrays."""
    import torch

    tokens_np = arrays.tokens
    with warnings.catch_warnings():
        # A read-only payload (bytes) still gives a view; the tensors must not be written.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tokens = torch.from_numpy(tokens_np)  # [N, 1 + h*w, C], shares the payload
    n, h, w = len(arrays.cameras), arrays.grid_height, arrays.grid_width
    c = int(tokens.shape[2])
    img_feats = tokens[:, 1:, :].reshape(n, h, w, c).permute(0, 3, 1, 2)  # [N, C, h, w] view
    cls = tokens[:, 0, :]  # [N, C]
    target = torch.device(device)
    if target.type != "cpu" or dtype is not None:
        img_feats = img_feats.to(device=target, dtype=dtype, non_blocking=True)
        cls = cls.to(device=target, dtype=dtype, non_blocking=True)
    wh = np.tile(np.array([arrays.model_width, arrays.model_height], np.float32), (n, 1))
    return {
        "img_feats": img_feats,
        "cls": cls,
        "projection_mat": torch.from_numpy(arrays.projection.astype(np.float32)).to(target),
        "image_wh": torch.from_numpy(wh).to(target),
        "timestamp": torch.tensor(arrays.stamp_ns / 1e9, dtype=torch.float64, device=target),
        "valid": torch.from_numpy(arrays.valid.copy()).to(target),
        "has_tokens": torch.from_numpy(arrays.has_tokens.copy()).to(target),
        "cameras": arrays.cameras,
    }


def scene_tokens_to_torch(
    msg: Any,  # Any: SceneTokens of either flavour (fields read by name)
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, Any]:  # Any: as arrays_to_torch
    """What a planner consumes from one SceneTokens message.

    Args:
        msg: rclpy or rosbags SceneTokens (or any object with its fields).
        device: Target device. On the CPU (and ``dtype`` None) ``img_feats`` and ``cls``
            are views of the payload (no copy); elsewhere one copy each.
        dtype: Convert the features to this dtype (default: as sent).

    Returns:
        ``img_feats [N_cam, C, h, w]``, ``cls [N_cam, C]``, ``projection_mat [N_cam, 4, 4]``
        (float32, base frame -> network pixels), ``image_wh [N_cam, 2]`` (float32, the
        network input width and height the projection refers to), ``timestamp`` (float64
        seconds of the step stamp), ``valid [N_cam]``, ``has_tokens [N_cam]`` (bool) and
        ``cameras`` (names in order).

    Raises:
        SceneTokensError: See :func:`scene_tokens_to_numpy`.
    """
    return arrays_to_torch(scene_tokens_to_numpy(msg), device, dtype)
