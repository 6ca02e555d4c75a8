"""TensorRT backend: an engine of the exported step, loaded from a plan file or the cache.

Where the engine comes from:

- ``checkpoint`` / ``.onnx`` input (`encoder_from_onnx`): the engine is looked up in the
  cache (``<cache>/engines/<model_id>-<key>.plan``; the key covers the ONNX file's
  sha256, the TensorRT version, the GPU and its compute capability, the precision, the
  shapes and the build flags). When missing it is built (minutes), checked against ONNX
  Runtime (`check`: above the precision's bound the start fails and nothing is
  cached, unless ``accept_build_error``), written atomically with its JSON sidecar, and
  older engines of the model are pruned. Builds share a timing cache (`checked_build`,
  `build`).
- ``.plan`` / ``.engine`` input (``rvm-ros export --format engine``, `encoder_from_plan`):
  loaded with its sidecar, after checking that it was built with this TensorRT version
  for this GPU (`engine`, `plan`).

At load the engine's I/O tensor names and types are checked against the step's
(``frames``, ``state`` -> ``features``, ``new_state``). Every ``set_input_shape``,
``set_tensor_address`` and ``execute_async_v3`` result is checked; failures raise
`TensorRTError` naming the plan and key (`engine`).

State on the GPU: per batch size two device state buffers ``[B, N, D]``; each step reads
one and writes the other (the output is bound to the next step's input), so a steady
set of cameras costs no state copy at all. When the set of cameras in a batch changes,
the states are gathered on the device (device-to-device copies), and states that would
be overwritten are first moved to their own device tensors (`buffers`).
Optionally (``cuda_graphs``, off by default until measured) the step is captured in a
CUDA graph per buffer parity and batch size (`encoder`). Device buffers and
streams belong to torch; no pycuda (`device`).

TensorRT cannot be installed in this project's CI: these modules import it lazily and
`tensorrt_available` says why it cannot run. Everything but the CUDA calls is exercised
by the tests with a stand-in ``tensorrt`` module on the CPU (`EngineDevice`).

This package's entry is `factory` (`tensorrt_available`, `encoder_from_onnx`,
`encoder_from_plan`); the public names of its parts are re-exported here.
"""

from __future__ import annotations

from rvm_ros.runtime.backends.tensorrt.build import TRT_PRECISIONS, BuildOptions, TensorRTError
from rvm_ros.runtime.backends.tensorrt.check import EngineCheckFailed
from rvm_ros.runtime.backends.tensorrt.checked_build import build_plan_file, cached_engine
from rvm_ros.runtime.backends.tensorrt.device import CudaDevice, EngineDevice
from rvm_ros.runtime.backends.tensorrt.encoder import TensorRTEncoder
from rvm_ros.runtime.backends.tensorrt.engine import LoadedEngine, open_plan
from rvm_ros.runtime.backends.tensorrt.factory import (
    encoder_from_onnx,
    encoder_from_plan,
    tensorrt_available,
)
from rvm_ros.runtime.backends.tensorrt.plan import PlanError, PlanMismatch

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
