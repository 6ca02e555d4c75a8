"""The runtime interface shared by every backend: `Encoder` and `EncoderInfo`.

An `Encoder` is the runtime's name for RVM as it runs on a robot: for a batch of frames
from named cameras it runs the frame encoder (the ViT, `rvm_ros.model.encoder.Encoder`)
and one recurrent core step, and returns the features. It keeps each camera's recurrent
state on the backend's device between calls, gathers the states of the cameras in a
batch into one tensor for the step and scatters the new states back. A camera seen for
the first time (or after `reset`) starts from the zero state. Backends implement it as
``TorchEncoder``, ``OrtEncoder``, ``OpenVINOEncoder`` and ``TensorRTEncoder``;
`rvm_ros.runtime.create_encoder` builds one.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypedDict, TypeVar, cast

import numpy as np

from rvm_ros.errors import RvmRosError

BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "tensorrt", "openvino", "auto")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")

StateT = TypeVar("StateT")


class BackendUnavailable(RvmRosError, RuntimeError):
    """The requested backend (or precision on it) cannot run on this machine."""

    cause = "backend_unavailable"


class InputError(RvmRosError, ValueError):
    """A `step` call got frames or camera names it cannot use (the message says which)."""

    cause = "invalid_input"
    exit_code = 2


class EncoderInfoDict(TypedDict):
    """`EncoderInfo.as_dict`: the same fields, JSON-friendly."""

    backend: str
    precision: str
    device: str
    model_id: str
    dim: int
    patch_size: int
    height: int
    width: int
    reason: str


@dataclass(frozen=True)
class EncoderInfo:
    """What an `Encoder` runs.

    Attributes:
        backend: ``torch``, ``onnxruntime``, ``tensorrt`` or ``openvino``.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``int8``.
        device: where the step runs, e.g. ``cpu``, ``cuda:0``.
        model_id: the model's id (variant and checkpoint hash).
        dim: feature width D.
        patch_size: patch size in pixels (a feature cell covers this many pixels).
        height: input frame height in pixels (fixed at creation).
        width: input frame width in pixels (fixed at creation).
        reason: why this backend was chosen (``auto``) or ``"requested"``.
    """

    backend: str
    precision: str
    device: str
    model_id: str
    dim: int
    patch_size: int
    height: int
    width: int
    reason: str

    @property
    def grid(self) -> tuple[int, int]:
        """Feature grid ``(h, w)``."""
        return self.height // self.patch_size, self.width // self.patch_size

    @property
    def tokens(self) -> int:
        """Tokens per frame: ``1 + h * w`` (token 0 is the CLS token)."""
        h, w = self.grid
        return 1 + h * w

    def as_dict(self) -> EncoderInfoDict:
        """JSON-friendly dictionary of the fields."""
        return cast("EncoderInfoDict", asdict(self))


def validate_size(height: int, width: int, patch_size: int) -> None:
    """Check that a frame size is usable by the model.

    Raises:
        InputError: when a side is not a positive multiple of ``patch_size``.
    """
    for name, value in (("height", height), ("width", width)):
        if int(value) != value or value <= 0 or value % patch_size:
            raise InputError(
                f"{name} {value} must be a positive multiple of the patch size {patch_size}"
            )


class Encoder(abc.ABC, Generic[StateT]):
    """One recurrent RVM step per call for a batch of frames from named cameras.

    Subclasses implement `_run` (and `_release`); this class validates inputs and keeps
    the per-camera states (opaque objects living on the backend's device).
    Calls are serialised with a lock, so one encoder may be shared between threads.
    """

    def __init__(self, info: EncoderInfo, max_batch: int) -> None:
        if max_batch < 1:
            raise InputError(f"max_batch must be at least 1, got {max_batch}")
        self.info = info
        self.max_batch = int(max_batch)
        self._states: dict[str, StateT] = {}
        self._lock = threading.Lock()
        self._closed = False

    # ----------------------------------------------------------------- public API
    @property
    def cameras(self) -> list[str]:
        """Cameras that currently hold a (non-zero) state."""
        return sorted(self._states)

    def step(self, frames: np.ndarray, cameras: Sequence[str]) -> np.ndarray:
        """Run one recurrent step for each frame.

        Args:
            frames: ``np.uint8 [B, H, W, 3]`` RGB frames of the size fixed at creation.
            cameras: ``B`` distinct camera names; frame ``i`` belongs to ``cameras[i]``.

        Returns:
            ``np.float32 [B, 1 + h*w, D]`` features on the host (token 0 = CLS).
            Each camera's state advances to the step's new state.

        Raises:
            InputError: bad frames or camera names (nothing is changed then).
            RuntimeError: the encoder was closed.
        """
        names = self._check_inputs(frames, cameras)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.info.backend} encoder is closed")
            states = [self._states.get(name) for name in names]
            features, new_states = self._run(np.ascontiguousarray(frames), states)
            for name, state in zip(names, new_states, strict=True):
                self._states[name] = state
        return features

    def reset(self, camera: str | None = None) -> None:
        """Forget the state of one camera (``camera``), or of all when ``None``.

        Resetting a camera that has no state is not an error.
        """
        with self._lock:
            if camera is None:
                self._states.clear()
            else:
                self._states.pop(camera, None)

    def close(self) -> None:
        """Release the backend's resources; later `step` calls raise."""
        with self._lock:
            self._states.clear()
            if not self._closed:
                self._closed = True
                self._release()

    def __enter__(self) -> Encoder[StateT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return (
            f"{type(self).__name__}(backend={i.backend}, precision={i.precision}, "
            f"device={i.device}, model={i.model_id}, size={i.height}x{i.width})"
        )

    # ----------------------------------------------------------- backend hooks
    @abc.abstractmethod
    def _run(
        self, frames: np.ndarray, states: list[StateT | None]
    ) -> tuple[np.ndarray, list[StateT]]:
        """Run the step: ``None`` in ``states`` means the zero state.

        Returns host float32 features ``[B, N, D]`` and one new state per frame.
        """

    def _release(self) -> None:
        """Free backend resources (sessions, device buffers)."""

    # ---------------------------------------------------------------- helpers
    def _check_inputs(self, frames: np.ndarray, cameras: Sequence[str]) -> list[str]:
        info = self.info
        if not isinstance(frames, np.ndarray):
            raise InputError(f"frames must be a numpy array, got {type(frames).__name__}")
        if frames.dtype != np.uint8:
            raise InputError(
                f"frames must be uint8 RGB [B, H, W, 3], got dtype {frames.dtype}"
                " (convert float images in [0, 1] with (x * 255).round().astype(np.uint8))"
            )
        expected = (info.height, info.width, 3)
        if frames.ndim != 4 or tuple(frames.shape[1:]) != expected:
            raise InputError(
                f"frames must have shape [B, {info.height}, {info.width}, 3] "
                f"(size fixed at creation), got {list(frames.shape)}"
            )
        if isinstance(cameras, str):
            raise InputError("cameras must be a list of camera names, got a single string")
        names = list(cameras)
        batch = frames.shape[0]
        if len(names) != batch:
            raise InputError(f"got {batch} frames but {len(names)} camera names")
        if batch == 0:
            raise InputError("empty batch: frames has 0 frames")
        if batch > self.max_batch:
            raise InputError(
                f"batch of {batch} frames exceeds max_batch={self.max_batch} set at creation"
            )
        for i, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise InputError(f"cameras[{i}] must be a non-empty string, got {name!r}")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise InputError(
                f"camera(s) {dup} appear more than once in one batch; "
                "a camera's frames must be stepped in order, one per call"
            )
        return names


# Any: each backend keeps its own per-camera state type (host arrays, torch tensors, device
# buffer rows), opaque to every caller; `Encoder` is invariant in it.
AnyEncoder = Encoder[Any]
