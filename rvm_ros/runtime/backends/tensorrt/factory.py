"""The TensorRT backend's entry: `tensorrt_available`, `encoder_from_onnx`, `encoder_from_plan`.

An encoder from an exported ONNX step (its engine looked up in the cache, or built, checked
and cached: `checked_build`) or from a plan file with its sidecar (`engine`, `plan`). The
package docstring (`rvm_ros.runtime.backends.tensorrt`) describes the whole backend.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from rvm_ros.runtime.backends.tensorrt.build import TRT_PRECISIONS, BuildOptions
from rvm_ros.runtime.backends.tensorrt.checked_build import cached_engine
from rvm_ros.runtime.backends.tensorrt.device import CudaDevice, EngineDevice
from rvm_ros.runtime.backends.tensorrt.encoder import TensorRTEncoder
from rvm_ros.runtime.backends.tensorrt.engine import open_plan
from rvm_ros.runtime.base import BackendUnavailable

log = logging.getLogger(__name__)

__all__ = ["encoder_from_onnx", "encoder_from_plan", "tensorrt_available"]


def tensorrt_available() -> tuple[bool, str]:
    """Whether TensorRT can run here, and why not.

    Returns:
        ``(True, "tensorrt <version>")`` or ``(False, reason)``.
    """
    try:
        import tensorrt as trt_mod
    except Exception as exc:  # ImportError, or a stub wheel failing at import
        return False, f"tensorrt cannot be imported ({type(exc).__name__}: {exc})"
    if not hasattr(trt_mod, "Builder") or not hasattr(trt_mod, "__version__"):
        return False, "tensorrt imports but is not the TensorRT runtime (type stubs only?)"
    if not torch.cuda.is_available():
        return False, "tensorrt is installed but torch sees no CUDA device"
    return True, f"tensorrt {trt_mod.__version__}"


def _device(device: str | None) -> CudaDevice:
    ok, why = tensorrt_available()
    if not ok:
        raise BackendUnavailable(f"the tensorrt backend cannot run: {why}")
    return CudaDevice(device)


def encoder_from_onnx(
    onnx_path: str | Path,
    *,
    precision: str,
    device: str | None,
    max_batch: int,
    cache: Path,
    reason: str = "requested",
    cuda_graphs: bool = False,
    accept_build_error: bool = False,
    version_compatible: bool = False,
    hardware_compatibility: str = "none",
    engine_device: EngineDevice | None = None,
) -> TensorRTEncoder:
    """A `TensorRTEncoder` of an exported ONNX step, through the engine cache.

    ``engine_device`` replaces the CUDA device (tests on the CPU with a stand-in
    ``tensorrt``); by default the CUDA device ``device``.
    """
    if precision not in TRT_PRECISIONS:
        raise BackendUnavailable(
            f"precision {precision!r} is not supported by the tensorrt backend "
            f"(choose one of {list(TRT_PRECISIONS)})"
        )
    dev = engine_device or _device(device)
    options = BuildOptions(
        precision=precision,
        max_batch=max_batch,
        version_compatible=version_compatible,
        hardware_compatibility=hardware_compatibility,
    )
    started = time.monotonic()
    loaded = cached_engine(
        onnx_path, options, dev, cache=cache, accept_build_error=accept_build_error
    )
    log.info("TensorRT engine ready in %.1f s: %s", time.monotonic() - started, loaded.where)
    return TensorRTEncoder(
        loaded, device=dev, max_batch=max_batch, cuda_graphs=cuda_graphs, reason=reason
    )


def encoder_from_plan(
    plan: str | Path,
    *,
    device: str | None,
    max_batch: int,
    height: int | None = None,
    width: int | None = None,
    reason: str = "requested",
    cuda_graphs: bool = False,
    accept_build_error: bool = False,
    engine_device: EngineDevice | None = None,
) -> TensorRTEncoder:
    """A `TensorRTEncoder` of a plan file with its sidecar (see `open_plan`)."""
    dev = engine_device or _device(device)
    loaded = open_plan(plan, dev, height=height, width=width, accept_build_error=accept_build_error)
    return TensorRTEncoder(
        loaded, device=dev, max_batch=max_batch, cuda_graphs=cuda_graphs, reason=reason
    )
