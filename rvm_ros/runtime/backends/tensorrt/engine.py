"""A deserialized TensorRT engine of the step: loading, I/O verification, checked calls.

`open_plan` loads a plan file with its sidecar (``rvm-ros export --format engine``) after
checking that it was built with this TensorRT version for this GPU and size, and refuses
one whose recorded build check failed unless that is accepted again. At load the engine's
I/O tensor names and types are checked against the step's (``frames``, ``state`` ->
``features``, ``new_state``, `verify_io`). `Binding` wraps one execution context: every
``set_input_shape``, ``set_tensor_address`` and ``execute_async_v3`` result is checked,
and failures raise `TensorRTError` naming the plan and key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rvm_ros.runtime.backends.tensorrt.build import TensorRTError
from rvm_ros.runtime.backends.tensorrt.check import BuildCheck, EngineCheckFailed
from rvm_ros.runtime.backends.tensorrt.device import EngineDevice, cuda_errors
from rvm_ros.runtime.backends.tensorrt.plan import (
    PlanError,
    PlanSidecar,
    check_compatible,
    check_size,
    read_sidecar,
)
from rvm_ros.runtime.onnx.export import INPUT_NAMES, OUTPUT_NAMES

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = [
    "Binding",
    "LoadedEngine",
    "check_accepted",
    "deserialize",
    "engine_io",
    "engine_where",
    "load_plan",
    "open_plan",
    "verify_io",
]


@dataclass
class LoadedEngine:
    """A deserialized engine and what it was built from.

    Attributes:
        runtime: the ``tensorrt.Runtime`` that owns it (kept alive with it).
        engine: the ``tensorrt.ICudaEngine``.
        plan_path: the plan file it was loaded from.
        sidecar: the plan's sidecar.
        build_check: the build check, when it was built (and checked) now.
    """

    runtime: trt.Runtime
    engine: trt.ICudaEngine
    plan_path: Path
    sidecar: PlanSidecar
    build_check: BuildCheck | None = None

    @property
    def where(self) -> str:
        """Names the engine in messages: plan path and cache key."""
        return engine_where(self.plan_path, self.sidecar.cache_key)


def engine_where(plan: Path, key: str) -> str:
    """Names an engine in messages: ``engine <plan> (key <key>)`` (no key part when empty)."""
    return f"engine {plan}" + (f" (key {key})" if key else "")


def deserialize(data: bytes, where: str, host_code: bool) -> tuple[trt.Runtime, trt.ICudaEngine]:
    """Deserialize a plan into an engine (with the runtime that owns it).

    Args:
        data: the serialized plan.
        where: names the engine in messages (`engine_where`).
        host_code: allow the embedded lean runtime (version-compatible plans).

    Raises:
        TensorRTError: TensorRT could not deserialize it.
    """
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    if host_code:  # version-compatible plans embed the lean runtime (host code)
        runtime.engine_host_code_allowed = True
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise TensorRTError(
            f"TensorRT could not deserialize {where} (another TensorRT version or GPU, "
            "or a damaged file); delete it to rebuild"
        )
    return runtime, engine


def engine_io(engine: trt.ICudaEngine) -> tuple[list[str], list[str]]:
    """The engine's input and output tensor names, in engine order."""
    import tensorrt as trt

    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = engine.get_tensor_mode(name)
        if mode == trt.TensorIOMode.INPUT:
            inputs.append(name)
        elif mode == trt.TensorIOMode.OUTPUT:
            outputs.append(name)
    return inputs, outputs


def verify_io(engine: trt.ICudaEngine, where: str) -> tuple[list[str], list[str]]:
    """Check the engine's I/O names and element types against the exported step's.

    Returns:
        The engine's input and output names.

    Raises:
        TensorRTError: a name is missing or extra (the message lists both sets), or a
            tensor has another element type than the buffers bound to it.
    """
    import tensorrt as trt

    inputs, outputs = engine_io(engine)
    if sorted(inputs) != sorted(INPUT_NAMES) or sorted(outputs) != sorted(OUTPUT_NAMES):
        raise TensorRTError(
            f"{where} has inputs {inputs} and outputs {outputs}; the step needs inputs "
            f"{list(INPUT_NAMES)} and outputs {list(OUTPUT_NAMES)}"
        )
    want = {INPUT_NAMES[0]: trt.DataType.UINT8}
    for name in (INPUT_NAMES[1], *OUTPUT_NAMES):
        want[name] = trt.DataType.FLOAT
    for name, dtype in want.items():
        got = engine.get_tensor_dtype(name)
        if got != dtype:
            raise TensorRTError(f"{where}: tensor {name!r} is {got}, expected {dtype}")
    return inputs, outputs


class Binding:
    """One execution context and the checked calls made on it.

    Raises:
        TensorRTError: TensorRT could not create the context.
    """

    def __init__(self, engine: trt.ICudaEngine, where: str) -> None:
        context = engine.create_execution_context()
        if context is None:
            raise TensorRTError(f"TensorRT could not create an execution context for {where}")
        self.context: trt.IExecutionContext = context
        self.where = where
        self.batch = 0

    def shapes(self, batch: int, frames: torch.Tensor, state: torch.Tensor) -> None:
        """Set the input shapes of ``batch`` (only when it differs from the last one).

        Raises:
            TensorRTError: TensorRT refused a shape (outside the batch profile).
        """
        if batch == self.batch:
            return
        for name, t in ((INPUT_NAMES[0], frames), (INPUT_NAMES[1], state)):
            shape = tuple(int(s) for s in t.shape)
            if not self.context.set_input_shape(name, shape):
                raise TensorRTError(
                    f"set_input_shape({name!r}, {shape}) failed for {self.where} "
                    "(outside its batch profile?)"
                )
        self.batch = batch

    def addresses(self, tensors: dict[str, torch.Tensor]) -> None:
        """Bind each named I/O tensor to the device memory of ``tensors[name]``.

        Raises:
            TensorRTError: TensorRT refused an address.
        """
        for name, t in tensors.items():
            if not self.context.set_tensor_address(name, t.data_ptr()):
                raise TensorRTError(f"set_tensor_address({name!r}) failed for {self.where}")

    def execute(self, stream: int) -> None:
        """Enqueue the step on ``stream``.

        Raises:
            TensorRTError: TensorRT could not enqueue it.
        """
        if not self.context.execute_async_v3(stream):
            raise TensorRTError(f"execute_async_v3 failed for {self.where}")


def check_accepted(sidecar: PlanSidecar, where: str, accept: bool) -> None:
    """Refuse a plan whose recorded build check failed, unless accepted now too.

    Raises:
        EngineCheckFailed: the recorded check failed and ``accept`` is not set.
    """
    if sidecar.check_passed or accept:
        return
    figures = {k: sidecar.build_check.get(k) for k in ("max_abs_error", "min_cosine")}
    raise EngineCheckFailed(
        f"{where} failed its build check ({figures}, bound {sidecar.build_check.get('bound')}) "
        "and was kept only because the error was accepted then; set "
        "tensorrt.accept_build_error to use it, or delete it to rebuild"
    )


def load_plan(plan: Path, device: EngineDevice, accept: bool) -> LoadedEngine:
    """Load a plan with its sidecar: compatibility, recorded check, I/O against the sidecar.

    Raises:
        PlanError: the sidecar is missing, unreadable or disagrees with the engine.
        PlanMismatch: built with another TensorRT version or for another GPU.
        EngineCheckFailed: its build check failed and ``accept`` is not set.
        TensorRTError: TensorRT could not load it.
    """
    import tensorrt as trt

    sidecar = read_sidecar(plan)
    where = engine_where(plan, sidecar.cache_key)
    check_compatible(
        sidecar,
        plan,
        tensorrt_version=trt.__version__,
        gpu_name=device.name,
        compute_capability=device.compute_capability,
    )
    check_accepted(sidecar, where, accept)
    with device.activate(), cuda_errors(f"loading {where}"):
        runtime, engine = deserialize(
            plan.read_bytes(), where, bool(sidecar.build_flags.get("version_compatible"))
        )
    inputs, outputs = verify_io(engine, where)
    if (tuple(inputs), tuple(outputs)) != (sidecar.inputs, sidecar.outputs):
        raise PlanError(
            f"{where}: the engine's tensors {inputs} -> {outputs} differ from its sidecar's "
            f"{list(sidecar.inputs)} -> {list(sidecar.outputs)}"
        )
    return LoadedEngine(runtime, engine, plan, sidecar)


def open_plan(
    plan: str | Path,
    device: EngineDevice,
    *,
    height: int | None = None,
    width: int | None = None,
    accept_build_error: bool = False,
) -> LoadedEngine:
    """Load a plan file written by `build_plan_file` (``rvm-ros export --format engine``).

    Raises:
        PlanError: the plan or its sidecar is missing, unreadable or inconsistent.
        PlanMismatch: built with another TensorRT version, for another GPU or size.
        EngineCheckFailed: its build check failed and ``accept_build_error`` is not set.
        TensorRTError: TensorRT could not load it.
    """
    plan = Path(plan)
    sidecar = read_sidecar(plan)
    check_size(sidecar, plan, height, width)
    return load_plan(plan, device, accept_build_error)
