"""TensorRT backend: an engine of the exported step, loaded from a plan file or the cache.

Where the engine comes from:

- ``checkpoint`` / ``.onnx`` input (`encoder_from_onnx`): the engine is looked up in the
  cache (``<cache>/engines/<model_id>-<key>.plan``; the key covers the ONNX file's
  sha256, the TensorRT version, the GPU and its compute capability, the precision, the
  shapes and the build flags). When missing it is built (minutes), checked against ONNX
  Runtime (`tensorrt_check`: above the precision's bound the start fails and nothing is
  cached, unless ``accept_build_error``), written atomically with its JSON sidecar, and
  older engines of the model are pruned. Builds share a timing cache (`tensorrt_onnx`,
  `tensorrt_build`).
- ``.plan`` / ``.engine`` input (``rvm-ros export --format engine``, `encoder_from_plan`):
  loaded with its sidecar, after checking that it was built with this TensorRT version
  for this GPU (`tensorrt_engine`, `tensorrt_plan`).

At load the engine's I/O tensor names and types are checked against the step's
(``frames``, ``state`` -> ``features``, ``new_state``). Every ``set_input_shape``,
``set_tensor_address`` and ``execute_async_v3`` result is checked; failures raise
`TensorRTError` naming the plan and key (`tensorrt_engine`).

State on the GPU: per batch size two device state buffers ``[B, N, D]``; each step reads
one and writes the other (the output is bound to the next step's input), so a steady
set of cameras costs no state copy at all. When the set of cameras in a batch changes,
the states are gathered on the device (device-to-device copies), and states that would
be overwritten are first moved to their own device tensors (`tensorrt_buffers`).
Optionally (``cuda_graphs``, off by default until measured) the step is captured in a
CUDA graph per buffer parity and batch size (`tensorrt_encoder`). Device buffers and
streams belong to torch; no pycuda (`tensorrt_device`).

TensorRT cannot be installed in this project's CI: these modules import it lazily and
`tensorrt_available` says why it cannot run. Everything but the CUDA calls is exercised
by the tests with a stand-in ``tensorrt`` module on the CPU (`EngineDevice`).

This module is the backend's entry: `tensorrt_available`, `encoder_from_onnx`,
`encoder_from_plan`, and the public names of its parts, re-exported.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from rvm_ros.runtime.backends.tensorrt_build import TRT_PRECISIONS, BuildOptions, TensorRTError
from rvm_ros.runtime.backends.tensorrt_check import EngineCheckFailed
from rvm_ros.runtime.backends.tensorrt_device import CudaDevice, EngineDevice
from rvm_ros.runtime.backends.tensorrt_encoder import TensorRTEncoder
from rvm_ros.runtime.backends.tensorrt_engine import LoadedEngine, open_plan
from rvm_ros.runtime.backends.tensorrt_onnx import build_plan_file, cached_engine
from rvm_ros.runtime.backends.tensorrt_plan import PlanError, PlanMismatch
from rvm_ros.runtime.base import BackendUnavailable

log = logging.getLogger(__name__)

__all__ = [
    "TRT_PRECISIONS",
    "BuildOptions",
    "CudaDevice",
    "EngineCheckFailed",
    "EngineDevice",
    "LoadedEngine",
    "PlanError",
    "PlanMismatch",
    "TensorRTEncoder",
    "TensorRTError",
    "build_plan_file",
    "cached_engine",
    "encoder_from_onnx",
    "encoder_from_plan",
    "open_plan",
    "tensorrt_available",
]


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
