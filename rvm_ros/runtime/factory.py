"""`create_encoder`: build an `Encoder` for a checkpoint on a backend (or pick one)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

import numpy as np
import torch

if TYPE_CHECKING:
    from rvm_ros.runtime.backends.tensorrt.device import EngineDevice
from rvm_ros.runtime.base import (
    BACKENDS,
    PRECISIONS,
    AnyEncoder,
    BackendUnavailable,
    InputError,
)
from rvm_ros.runtime.cpu_table import cpu_choice
from rvm_ros.runtime.source import CheckpointSource, load_any

log = logging.getLogger(__name__)


def _cpu_backend_available(backend: str) -> tuple[bool, str]:
    """Whether a CPU backend can be created here, and why not."""
    if backend == "onnxruntime":
        from rvm_ros.runtime.backends.onnxruntime import ort_available

        return ort_available(), "onnxruntime is not installed"
    if backend == "openvino":
        from rvm_ros.runtime.backends.openvino import openvino_available

        return openvino_available()
    return True, ""


@dataclass(frozen=True)
class Choice:
    """A backend choice: ``backend``, ``device`` and the ``reason`` for it."""

    backend: str
    device: str
    reason: str


def choose_backend(precision: str = "fp32", device: str | None = None) -> Choice:
    """Pick a backend for ``backend="auto"``.

    TensorRT when it imports and a CUDA device exists; else torch on CUDA (CUDA graphs);
    else the fastest installed CPU backend for the CPU's feature set and the precision,
    from the measured table `rvm_ros.runtime.cpu_table.CPU_TABLE`.

    Args:
        precision: requested precision.
        device: ``None`` (any), ``cpu`` or ``cuda[:i]``.

    Returns:
        The `Choice`, with a reason naming why the better options were not taken.
    """
    from rvm_ros.runtime.backends.tensorrt import TRT_PRECISIONS, tensorrt_available

    wants_cpu = device is not None and torch.device(device).type == "cpu"
    notes: list[str] = []
    if not wants_cpu:
        trt_ok, trt_why = tensorrt_available()
        if trt_ok and precision in TRT_PRECISIONS:
            gpu = torch.cuda.get_device_name(torch.device(device or "cuda"))
            return Choice("tensorrt", device or "cuda", f"{trt_why} on {gpu}")
        notes.append(trt_why if not trt_ok else f"tensorrt does not run {precision}")
        if torch.cuda.is_available() and precision in ("fp32", "bf16", "fp16"):
            gpu = torch.cuda.get_device_name(torch.device(device or "cuda"))
            return Choice(
                "torch", device or "cuda", f"{'; '.join(notes)}; torch with CUDA graphs on {gpu}"
            )
        if device is not None:
            raise BackendUnavailable(f"device {device} requested but no CUDA backend can run")
        notes.append(
            f"no CUDA backend runs {precision}" if torch.cuda.is_available() else "no CUDA device"
        )
    backend, why = cpu_choice(precision, _cpu_backend_available)
    prefix = f"{'; '.join(notes)}; " if notes else ""
    return Choice(backend, "cpu", f"{prefix}{why}")


def create_encoder(
    checkpoint: CheckpointSource,
    backend: str = "auto",
    precision: str = "fp32",
    device: str | None = None,
    height: int = 256,
    width: int = 256,
    max_batch: int = 8,
    *,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
    cuda_graphs: bool = True,
    tensorrt_options: TensorRTOptions | None = None,
    calibration: str | Path | None = None,
) -> AnyEncoder:
    """Create an `Encoder` for one model on one backend.

    Args:
        checkpoint: a checkpoint path (``.npz`` / ``.safetensors``), ``random:<variant>``,
            an already loaded `RVM`, (onnxruntime / tensorrt) an exported ``.onnx``, or
            (tensorrt, auto) a TensorRT ``.plan`` / ``.engine`` with its JSON sidecar
            (``rvm-ros export --format engine``; its precision and size are the plan's).
        backend: ``torch``, ``onnxruntime``, ``tensorrt``, ``openvino`` or ``auto``.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``int8`` (not every backend runs each).
        device: ``cpu``, ``cuda[:i]`` or ``None`` (best available).
        height: input frame height (fixed; a multiple of the patch size).
        width: input frame width.
        max_batch: largest number of frames (cameras) in one `step`.
        cache_dir: where exported ONNX files and TensorRT plans are cached
            (default ``$RVM_ROS_CACHE`` or ``~/.cache/rvm_ros``).
        threads: CPU threads of the onnxruntime / openvino backends (default: all cores).
        cuda_graphs: torch backend on CUDA: capture the step in CUDA graphs.
        tensorrt_options: tensorrt backend: keyword arguments of
            `rvm_ros.runtime.backends.tensorrt.encoder_from_onnx` (``accept_build_error``,
            ``cuda_graphs`` (default off), ``version_compatible``, ``hardware_compatibility``).
        calibration: openvino int8: frames to calibrate on (video file or ``.npy``);
            default synthetic frames.

    Returns:
        The encoder; its ``info.reason`` says why the backend was chosen.

    Raises:
        InputError: unknown backend or precision, bad size.
        BackendUnavailable: the backend or precision cannot run here.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    request = EncoderRequest(
        checkpoint=checkpoint,
        backend=backend,
        precision=precision,
        device=device,
        height=height,
        width=width,
        max_batch=max_batch,
        cache_dir=cache_dir,
        threads=threads,
        cuda_graphs=cuda_graphs,
        tensorrt_options=TensorRTOptions(**(tensorrt_options or {})),
        calibration=calibration,
    )
    from rvm_ros.runtime.backends.tensorrt.plan import is_plan_path

    if is_plan_path(checkpoint):  # a TensorRT plan: only the tensorrt backend runs it
        return _plan_encoder(checkpoint, request)
    if backend == "auto":
        choice = choose_backend(precision, device)
        request = replace(
            request, backend=choice.backend, device=choice.device, reason=f"auto: {choice.reason}"
        )
        log.info("auto backend: %s on %s (%s)", choice.backend, choice.device, choice.reason)
    onnx_file = _onnx_path(checkpoint)
    _check_available(request.backend)
    if request.backend == "torch":
        return _torch_encoder(request, onnx_file)
    return _onnx_encoder(request, onnx_file)


class TensorRTPlanOptions(TypedDict, total=False):
    """Options of the tensorrt backend for a plan file (`encoder_from_plan`)."""

    accept_build_error: bool
    cuda_graphs: bool
    engine_device: EngineDevice


class TensorRTOptions(TensorRTPlanOptions, total=False):
    """Options of the tensorrt backend (`rvm_ros.runtime.backends.tensorrt.encoder_from_onnx`).

    ``version_compatible`` and ``hardware_compatibility`` are build flags: ignored for a plan.
    """

    version_compatible: bool
    hardware_compatibility: str


@dataclass(frozen=True)
class EncoderRequest:
    """The arguments of one `create_encoder` call (``backend`` resolved from ``auto``)."""

    checkpoint: CheckpointSource
    backend: str
    precision: str
    device: str | None
    height: int
    width: int
    max_batch: int
    cache_dir: str | Path | None
    threads: int | None
    cuda_graphs: bool
    tensorrt_options: TensorRTOptions
    calibration: str | Path | None
    reason: str = "requested"


def _plan_encoder(plan: str | Path, request: EncoderRequest) -> AnyEncoder:
    """The tensorrt encoder of a TensorRT plan file (its build flags are fixed)."""
    if request.backend not in ("auto", "tensorrt"):
        raise InputError(f"{plan} is a TensorRT plan; use backend tensorrt or auto")
    from rvm_ros.runtime.backends.tensorrt import encoder_from_plan

    build_flags = ("version_compatible", "hardware_compatibility")  # fixed at build time
    trt_plan = cast(
        "TensorRTPlanOptions",
        {k: v for k, v in request.tensorrt_options.items() if k not in build_flags},
    )
    return encoder_from_plan(
        plan,
        device=request.device,
        max_batch=request.max_batch,
        height=request.height,
        width=request.width,
        reason="requested" if request.backend == "tensorrt" else "auto: a TensorRT plan was given",
        **trt_plan,
    )


def _check_available(backend: str) -> None:
    """Say that tensorrt / openvino cannot run before spending time on an ONNX export."""
    if backend == "tensorrt":
        from rvm_ros.runtime.backends.tensorrt import tensorrt_available

        trt_ok, trt_why = tensorrt_available()
        if not trt_ok:
            raise BackendUnavailable(f"the tensorrt backend cannot run: {trt_why}")
    if backend == "openvino":
        from rvm_ros.runtime.backends.openvino import openvino_available

        ov_ok, ov_why = openvino_available()
        if not ov_ok:
            raise BackendUnavailable(f"the openvino backend cannot run: {ov_why}")


def _torch_encoder(request: EncoderRequest, onnx_file: Path | None) -> AnyEncoder:
    """The torch encoder of a checkpoint (an ONNX file cannot run on torch)."""
    if onnx_file is not None:
        raise InputError(f"the torch backend needs a checkpoint, not an ONNX file: {onnx_file}")
    from rvm_ros.runtime.backends.torch import TorchEncoder

    return TorchEncoder(
        load_any(request.checkpoint),
        precision=request.precision,
        device=request.device,
        height=request.height,
        width=request.width,
        max_batch=request.max_batch,
        cuda_graphs=request.cuda_graphs,
        reason=request.reason,
    )


def _onnx_encoder(request: EncoderRequest, onnx_file: Path | None) -> AnyEncoder:
    """An onnxruntime, openvino or tensorrt encoder of an ONNX step (the checkpoint's
    cached export when no ``.onnx`` was given)."""
    from rvm_ros.runtime.cache import cache_dir as resolve_cache
    from rvm_ros.runtime.cache import cached_export_of
    from rvm_ros.runtime.onnx.export import read_metadata

    height, width = request.height, request.width
    if onnx_file is None:
        onnx_file = cached_export_of(request.checkpoint, height, width, request.cache_dir)
    meta = read_metadata(onnx_file)
    if (meta["height"], meta["width"]) != (height, width):
        raise InputError(
            f"{onnx_file} was exported for {meta['height']}x{meta['width']} frames, "
            f"not {height}x{width}"
        )
    common = OnnxEncoderArgs(
        model_id=meta["model_id"],
        dim=meta["dim"],
        patch_size=meta["patch_size"],
        height=height,
        width=width,
        precision=request.precision,
        device=request.device,
        max_batch=request.max_batch,
        reason=request.reason,
    )
    if request.backend == "onnxruntime":
        from rvm_ros.runtime.backends.onnxruntime import OrtEncoder

        return OrtEncoder(onnx_file, threads=request.threads, **common)
    if request.backend == "openvino":
        from rvm_ros.runtime.backends.openvino import OpenVINOEncoder

        return OpenVINOEncoder(
            onnx_file,
            threads=request.threads,
            cache=resolve_cache(request.cache_dir),
            calibration=request.calibration,
            **common,
        )
    from rvm_ros.runtime.backends.tensorrt import encoder_from_onnx

    return encoder_from_onnx(
        onnx_file,
        precision=request.precision,
        device=request.device,
        max_batch=request.max_batch,
        cache=resolve_cache(request.cache_dir),
        reason=request.reason,
        **request.tensorrt_options,
    )


class OnnxEncoderArgs(TypedDict):
    """The keyword arguments every ONNX-based encoder takes: model facts and settings."""

    model_id: str
    dim: int
    patch_size: int
    height: int
    width: int
    precision: str
    device: str | None
    max_batch: int
    reason: str


def _onnx_path(checkpoint: CheckpointSource) -> Path | None:
    if isinstance(checkpoint, (str, Path)) and str(checkpoint).endswith(".onnx"):
        path = Path(checkpoint)
        if not path.is_file():
            raise InputError(f"ONNX file not found: {path}")
        return path
    return None


def encode_video(
    encoder: AnyEncoder, video: np.ndarray, cameras: list[str] | None = None
) -> np.ndarray:
    """Stream clips through an encoder, one frame per step, from the zero state.

    Args:
        encoder: the encoder (its states for ``cameras`` are reset first).
        video: ``np.uint8 [B, T, H, W, 3]`` (or ``[T, H, W, 3]`` for one clip).
        cameras: names of the ``B`` streams (default ``clip0, clip1, ...``).

    Returns:
        Features ``np.float32 [B, T, N, D]`` (``[T, N, D]`` for a single clip).
    """
    single = video.ndim == 4
    clips = video[None] if single else video
    if clips.ndim != 5:
        raise InputError(f"video must be [B, T, H, W, 3] or [T, H, W, 3], got {video.shape}")
    names = cameras or [f"clip{i}" for i in range(clips.shape[0])]
    if len(names) != clips.shape[0]:
        raise InputError(f"got {clips.shape[0]} clips but {len(names)} camera names")
    for name in names:
        encoder.reset(name)
    steps = [encoder.step(clips[:, t], names) for t in range(clips.shape[1])]
    out = np.stack(steps, axis=1)  # [B, T, N, D]
    return out[0] if single else out
