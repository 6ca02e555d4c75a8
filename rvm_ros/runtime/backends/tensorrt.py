"""TensorRT backend: an engine of the exported step, loaded from a plan file or the cache.

Where the engine comes from:

- ``checkpoint`` / ``.onnx`` input: the engine is looked up in the cache
  (``<cache>/engines/<model_id>-<key>.plan``; the key covers the ONNX file's sha256, the
  TensorRT version, the GPU and its compute capability, the precision, the shapes and
  the build flags). When missing it is built (minutes), checked against ONNX Runtime
  (`tensorrt_check`: above the precision's bound the start fails and nothing is cached,
  unless ``accept_build_error``), written atomically with its JSON sidecar, and older
  engines of the model are pruned. Builds share a timing cache.
- ``.plan`` / ``.engine`` input (``rvm-ros export --format engine``): loaded with its
  sidecar, after checking that it was built with this TensorRT version for this GPU.

At load the engine's I/O tensor names and types are checked against the step's
(``frames``, ``state`` -> ``features``, ``new_state``). Every ``set_input_shape``,
``set_tensor_address`` and ``execute_async_v3`` result is checked; failures raise
`TensorRTError` naming the plan and key.

State on the GPU: per batch size two device state buffers ``[B, N, D]``; each step reads
one and writes the other (the output is bound to the next step's input), so a steady
set of cameras costs no state copy at all. When the set of cameras in a batch changes,
the states are gathered on the device (device-to-device copies), and states that would
be overwritten are first moved to their own device tensors. Optionally (``cuda_graphs``,
off by default until measured) the step is captured in a CUDA graph per buffer parity and
batch size. Device buffers and streams belong to torch; no pycuda.

TensorRT cannot be installed in this project's CI: this module imports it lazily and
`tensorrt_available` says why it cannot run. Everything but the CUDA calls is exercised
by the tests with a stand-in ``tensorrt`` module on the CPU (`EngineDevice`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import file_sha256
from rvm_ros.runtime.backends.tensorrt_build import (
    TRT_PRECISIONS,
    BuildOptions,
    TensorRTError,
    build_plan,
)
from rvm_ros.runtime.backends.tensorrt_check import (
    BuildCheck,
    EngineCheckFailed,
    check_inputs,
    compare_outputs,
)
from rvm_ros.runtime.backends.tensorrt_plan import (
    PlanError,
    PlanMismatch,
    PlanSidecar,
    check_compatible,
    check_size,
    read_sidecar,
    write_plan,
)
from rvm_ros.runtime.base import BackendUnavailable, EncoderInfo, InputError, StepRunner
from rvm_ros.runtime.cache import (
    KEEP_ENGINES,
    engine_cache_key,
    engine_cache_path,
    prune_engines,
    timing_cache_path,
    touch_engine,
)
from rvm_ros.runtime.onnx.export import INPUT_NAMES, OUTPUT_NAMES

if TYPE_CHECKING:
    import tensorrt as trt

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


# ------------------------------------------------------------------------- device
class EngineDevice(Protocol):
    """The accelerator side of the encoder: where buffers live, the stream, graphs.

    `CudaDevice` is the real one; the tests supply a CPU stand-in.
    """

    torch_device: torch.device
    name: str
    compute_capability: str

    def stream_handle(self) -> int:
        """The raw stream handle TensorRT enqueues on."""

    def begin(self) -> None:
        """Order the engine's stream after the work already queued by torch."""

    def end(self) -> None:
        """Order torch's later work after the engine's stream."""

    def capture(self, launch: Callable[[], None]) -> Callable[[], None]:
        """Capture ``launch`` (enqueue work on `stream_handle`) into a replayable graph."""

    def activate(self) -> contextlib.AbstractContextManager[object]:
        """Context in which TensorRT objects of this device are created."""


class CudaDevice:
    """A CUDA device with one torch stream for the engine; graphs are torch CUDA graphs."""

    def __init__(self, device: str | torch.device | None = None) -> None:
        dev = torch.device(device or "cuda")
        if dev.type != "cuda":
            raise BackendUnavailable(f"the tensorrt backend runs on CUDA devices, not {dev}")
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"device {dev} requested but torch sees no CUDA device")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        self.torch_device = dev
        self.name = torch.cuda.get_device_name(dev)
        major, minor = torch.cuda.get_device_capability(dev)
        self.compute_capability = f"{major}.{minor}"
        # torch.cuda.Stream.__new__ carries no annotations: call it through a typed name.
        new_stream: Callable[[torch.device], torch.cuda.Stream] = torch.cuda.Stream
        self._stream = new_stream(dev)

    def stream_handle(self) -> int:
        """The engine stream's ``cudaStream_t``."""
        return int(self._stream.cuda_stream)

    def begin(self) -> None:
        """Engine stream waits for torch's current stream (frame upload, state gather)."""
        self._stream.wait_stream(torch.cuda.current_stream(self.torch_device))

    def end(self) -> None:
        """Torch's current stream waits for the engine (feature download)."""
        torch.cuda.current_stream(self.torch_device).wait_stream(self._stream)

    def capture(self, launch: Callable[[], None]) -> Callable[[], None]:
        """A CUDA graph of ``launch`` on the engine stream; returns its replay."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self._stream):
            launch()
        stream = self._stream

        def replay() -> None:
            with torch.cuda.stream(stream):
                graph.replay()

        return replay

    def activate(self) -> contextlib.AbstractContextManager[object]:
        """``torch.cuda.device`` of this device."""
        return torch.cuda.device(self.torch_device)


# ------------------------------------------------------------------- the engine
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
        return _where(self.plan_path, self.sidecar.cache_key)


@contextlib.contextmanager
def cuda_errors(doing: str) -> Iterator[None]:
    """Turn torch's CUDA errors (allocation, copies, kernels) into `TensorRTError`s."""
    try:
        yield
    except RvmRosError:
        raise
    except RuntimeError as exc:  # torch.OutOfMemoryError and "CUDA error: ..." included
        raise TensorRTError(f"CUDA error while {doing}: {exc}") from exc


def _where(plan: Path, key: str) -> str:
    return f"engine {plan}" + (f" (key {key})" if key else "")


def _deserialize(data: bytes, where: str, host_code: bool) -> tuple[trt.Runtime, trt.ICudaEngine]:
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


class _Binding:
    """One execution context and the checked calls made on it."""

    def __init__(self, engine: trt.ICudaEngine, where: str) -> None:
        context = engine.create_execution_context()
        if context is None:
            raise TensorRTError(f"TensorRT could not create an execution context for {where}")
        self.context: trt.IExecutionContext = context
        self.where = where
        self.batch = 0

    def shapes(self, batch: int, frames: torch.Tensor, state: torch.Tensor) -> None:
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
        for name, t in tensors.items():
            if not self.context.set_tensor_address(name, t.data_ptr()):
                raise TensorRTError(f"set_tensor_address({name!r}) failed for {self.where}")

    def execute(self, stream: int) -> None:
        if not self.context.execute_async_v3(stream):
            raise TensorRTError(f"execute_async_v3 failed for {self.where}")


def _onnx_config(onnx_path: Path) -> str:
    """The model config JSON stored in an rvm_ros ONNX export (empty when absent)."""
    import onnx

    from rvm_ros.runtime.onnx.export import METADATA_PREFIX

    proto = onnx.load(str(onnx_path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    return str(props.get(METADATA_PREFIX + "config", ""))


def _run_check(
    engine: trt.ICudaEngine,
    onnx_path: Path,
    sidecar: PlanSidecar,
    device: EngineDevice,
    where: str,
) -> BuildCheck:
    """Run the engine and ONNX Runtime on the fixed check inputs; compare."""
    import onnxruntime as ort

    batch = min(2, sidecar.max_batch)
    frames, state = check_inputs(batch, sidecar.height, sidecar.width, sidecar.tokens, sidecar.dim)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = sess.run(list(OUTPUT_NAMES), {INPUT_NAMES[0]: frames, INPUT_NAMES[1]: state})
    dev = device.torch_device
    x = torch.from_numpy(frames).to(dev)
    s = torch.from_numpy(state).to(dev)
    outs = {name: torch.empty_like(s) for name in OUTPUT_NAMES}
    binding = _Binding(engine, where)
    binding.shapes(batch, x, s)
    binding.addresses({INPUT_NAMES[0]: x, INPUT_NAMES[1]: s, **outs})
    device.begin()
    binding.execute(device.stream_handle())
    device.end()
    got = [outs[name].cpu().numpy() for name in OUTPUT_NAMES]
    return compare_outputs(got, [np.asarray(w) for w in want], sidecar.precision)


def _gate(check: BuildCheck, where: str, accept: bool) -> None:
    if check.passed:
        log.info("TensorRT build check passed: %s", check.describe())
        return
    if accept:
        log.warning("TensorRT build check FAILED but accepted: %s", check.describe())
        return
    raise EngineCheckFailed(
        f"{where}: {check.describe()}; the engine was not kept. Set the parameter "
        "tensorrt.accept_build_error (export: --accept-build-error) to use it anyway"
    )


def _build_checked(
    onnx_path: Path,
    options: BuildOptions,
    device: EngineDevice,
    *,
    cache: Path | None,
    cache_key: str,
    accept_build_error: bool,
    where: str,
) -> tuple[bytes, LoadedEngine]:
    """Build, load, verify and gate an engine; nothing is written but the timing cache."""
    import tensorrt as trt

    from rvm_ros.runtime.onnx.export import read_metadata

    meta = read_metadata(onnx_path)
    h, w, patch = int(meta["height"]), int(meta["width"]), int(meta["patch_size"])
    tokens = 1 + (h // patch) * (w // patch)
    timing = timing_cache_path(cache, trt.__version__, device.compute_capability) if cache else None
    log.info("building TensorRT %s %s (this takes minutes)", options.precision, where)
    with device.activate(), cuda_errors(f"building {where}"):
        data, seconds = build_plan(
            onnx_path,
            options,
            height=h,
            width=w,
            tokens=tokens,
            dim=int(meta["dim"]),
            timing_cache=timing,
            where=where,
        )
        runtime, engine = _deserialize(data, where, options.version_compatible)
        inputs, outputs = verify_io(engine, where)
        sidecar = PlanSidecar(
            model_id=str(meta["model_id"]),
            model_config=_onnx_config(onnx_path),
            dim=int(meta["dim"]),
            patch_size=patch,
            height=h,
            width=w,
            tokens=tokens,
            precision=options.precision,
            min_batch=1,
            opt_batch=options.opt,
            max_batch=options.max_batch,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            onnx_sha256=file_sha256(onnx_path),
            plan_sha256="",
            tensorrt_version=trt.__version__,
            gpu_name=device.name,
            compute_capability=device.compute_capability,
            build_flags=options.flags(),
            build_seconds=round(seconds, 3),
            cache_key=cache_key,
        )
        check = _run_check(engine, onnx_path, sidecar, device, where)
    log.info("built %s in %.1f s", where, seconds)
    _gate(check, where, accept_build_error)
    sidecar = replace(
        sidecar,
        plan_sha256=hashlib.sha256(data).hexdigest(),
        build_check={**check.as_dict(), "accepted": not check.passed},
    )
    return data, LoadedEngine(runtime, engine, Path("<new>"), sidecar, check)


def _accepted(sidecar: PlanSidecar, where: str, accept: bool) -> None:
    """Refuse a plan whose recorded build check failed, unless accepted now too."""
    if sidecar.check_passed or accept:
        return
    figures = {k: sidecar.build_check.get(k) for k in ("max_abs_error", "min_cosine")}
    raise EngineCheckFailed(
        f"{where} failed its build check ({figures}, bound {sidecar.build_check.get('bound')}) "
        "and was kept only because the error was accepted then; set "
        "tensorrt.accept_build_error to use it, or delete it to rebuild"
    )


def cached_engine(
    onnx_path: str | Path,
    options: BuildOptions,
    device: EngineDevice,
    *,
    cache: str | Path,
    accept_build_error: bool = False,
    keep_engines: int = KEEP_ENGINES,
) -> LoadedEngine:
    """The engine of an ONNX step from the cache, built (and checked) when missing.

    Raises:
        TensorRTError: a TensorRT call failed.
        EngineCheckFailed: a new engine failed the build check (nothing was cached), or
            a cached one had failed it and ``accept_build_error`` is not set.
    """
    import tensorrt as trt

    from rvm_ros.runtime.onnx.export import read_metadata

    onnx_path = Path(onnx_path)
    meta = read_metadata(onnx_path)
    key = engine_cache_key(
        file_sha256(onnx_path),
        trt.__version__,
        device.name,
        device.compute_capability,
        options.precision,
        int(meta["height"]),
        int(meta["width"]),
        options.max_batch,
        options.opt,
        options.flags(),
    )
    plan = engine_cache_path(cache, str(meta["model_id"]), key)
    where = _where(plan, key)
    if plan.is_file():
        try:
            loaded = _load(plan, device, accept_build_error)
        except PlanError as exc:  # a plan without a (matching) sidecar: rebuild it
            log.warning("ignoring cached %s: %s", where, exc)
        else:
            touch_engine(plan)
            log.info("using cached TensorRT %s", where)
            return loaded
    data, built = _build_checked(
        onnx_path,
        options,
        device,
        cache=Path(cache),
        cache_key=key,
        accept_build_error=accept_build_error,
        where=where,
    )
    write_plan(plan, data, built.sidecar)
    prune_engines(cache, str(meta["model_id"]), keep_engines)
    built.plan_path = plan
    return built


def build_plan_file(
    onnx_path: str | Path,
    out: str | Path,
    options: BuildOptions,
    device: EngineDevice,
    *,
    cache: str | Path | None = None,
    accept_build_error: bool = False,
) -> LoadedEngine:
    """Build, check and write a plan file with its sidecar (``rvm-ros export``).

    Nothing is written to ``out`` unless the engine passes the build check (or the error
    is accepted). The timing cache of ``cache`` is used and updated.

    Raises:
        TensorRTError: a TensorRT call failed.
        EngineCheckFailed: the build check failed.
    """
    out = Path(out)
    data, built = _build_checked(
        Path(onnx_path),
        options,
        device,
        cache=Path(cache) if cache is not None else None,
        cache_key="",
        accept_build_error=accept_build_error,
        where=f"engine {out}",
    )
    write_plan(out, data, built.sidecar)
    built.plan_path = out
    return built


def _load(plan: Path, device: EngineDevice, accept: bool) -> LoadedEngine:
    import tensorrt as trt

    sidecar = read_sidecar(plan)
    where = _where(plan, sidecar.cache_key)
    check_compatible(
        sidecar,
        plan,
        tensorrt_version=trt.__version__,
        gpu_name=device.name,
        compute_capability=device.compute_capability,
    )
    _accepted(sidecar, where, accept)
    with device.activate(), cuda_errors(f"loading {where}"):
        runtime, engine = _deserialize(
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
    return _load(plan, device, accept_build_error)


# ------------------------------------------------------------------- the encoder
@dataclass(eq=False)
class _StateRef:
    """A camera's state ``[N, D]``: a row of a state buffer, or its own device tensor."""

    tensor: torch.Tensor


@dataclass(eq=False)
class _Buffers:
    """The device buffers of one batch size: frames, two states, features, graphs."""

    frames: torch.Tensor  # uint8 [B, H, W, 3]
    states: tuple[torch.Tensor, torch.Tensor]  # float32 [B, N, D] each
    features: torch.Tensor  # float32 [B, N, D]
    binding: _Binding
    parity: int = 0  # states[parity] holds the latest output
    occupants: tuple[list[_StateRef], list[_StateRef]] = field(default_factory=lambda: ([], []))
    graphs: dict[int, Callable[[], None]] = field(default_factory=dict)


class TensorRTEncoder(StepRunner[_StateRef]):
    """Runs a loaded TensorRT engine of the step; states stay in device buffers.

    Args:
        loaded: the engine (`cached_engine` or `open_plan`).
        device: the device it runs on (`CudaDevice`).
        max_batch: largest batch; at most the engine's profile maximum.
        cuda_graphs: capture the step in a CUDA graph per buffer parity and batch size
            (one execution context per batch size then). Off by default: not yet measured
            against plain enqueue.
        reason: recorded in `EncoderInfo.reason`.

    Raises:
        InputError: ``max_batch`` above the engine's profile.
    """

    def __init__(
        self,
        loaded: LoadedEngine,
        *,
        device: EngineDevice,
        max_batch: int,
        cuda_graphs: bool = False,
        reason: str = "requested",
    ) -> None:
        side = loaded.sidecar
        if max_batch > side.max_batch:
            raise InputError(
                f"max_batch {max_batch} exceeds the batch profile 1..{side.max_batch} of "
                f"{loaded.where}; rebuild it with a larger --max-batch"
            )
        self.loaded = loaded
        self.device = device
        self.plan_path = loaded.plan_path
        self.build_check = loaded.build_check
        self._tokens, self._dim = side.tokens, side.dim
        self._graphs = bool(cuda_graphs)
        self._buffers: dict[int, _Buffers] = {}
        self._shared: _Binding | None = None
        self._zero = torch.zeros(side.tokens, side.dim, device=device.torch_device)
        info = EncoderInfo(
            backend="tensorrt",
            precision=side.precision,
            device=str(device.torch_device),
            model_id=side.model_id,
            dim=side.dim,
            patch_size=side.patch_size,
            height=side.height,
            width=side.width,
            reason=reason,
        )
        super().__init__(info, max_batch)

    # ----------------------------------------------------------------- buffers
    def _buffers_for(self, batch: int) -> _Buffers:
        bufs = self._buffers.get(batch)
        if bufs is not None:
            return bufs
        dev, i = self.device.torch_device, self.info
        if self._graphs:  # a context per batch size: a captured graph never sees a reshape
            binding = _Binding(self.loaded.engine, self.loaded.where)
        else:
            if self._shared is None:
                self._shared = _Binding(self.loaded.engine, self.loaded.where)
            binding = self._shared
        shape = (batch, self._tokens, self._dim)
        bufs = _Buffers(
            frames=torch.zeros(batch, i.height, i.width, 3, dtype=torch.uint8, device=dev),
            states=(torch.zeros(shape, device=dev), torch.zeros(shape, device=dev)),
            features=torch.zeros(shape, device=dev),
            binding=binding,
        )
        self._buffers[batch] = bufs
        return bufs

    def _spill(self, bufs: _Buffers, which: int, keep: set[int]) -> None:
        """Give live states held in ``bufs.states[which]`` their own tensors (it is rewritten)."""
        for ref in bufs.occupants[which]:
            if id(ref) in keep:
                ref.tensor = ref.tensor.clone()
        bufs.occupants[which].clear()

    # -------------------------------------------------------------------- step
    @torch.inference_mode()
    def _run(
        self, frames: np.ndarray, states: list[_StateRef | None]
    ) -> tuple[np.ndarray, list[_StateRef]]:
        with cuda_errors(f"running {self.loaded.where}"):
            return self._step(frames, states)

    def _step(
        self, frames: np.ndarray, states: list[_StateRef | None]
    ) -> tuple[np.ndarray, list[_StateRef]]:
        batch = frames.shape[0]
        bufs = self._buffers_for(batch)
        src = bufs.parity
        dst = 1 - src
        live = {id(r) for r in self._states.values()}
        resident = len(bufs.occupants[src]) == batch and all(
            s is o for s, o in zip(states, bufs.occupants[src], strict=True)
        )
        if resident:  # the same cameras in the same order: the last output is the input
            self._spill(bufs, dst, live - {id(s) for s in states})
        else:  # gather on the device; every live state in either buffer gets its own copy
            gathered = torch.stack([s.tensor if s is not None else self._zero for s in states])
            self._spill(bufs, src, live)
            self._spill(bufs, dst, live)
            bufs.states[src].copy_(gathered)
        bufs.frames.copy_(torch.from_numpy(frames))
        self._launch(bufs, batch, src, dst)
        bufs.parity = dst
        new = [_StateRef(bufs.states[dst][i]) for i in range(batch)]
        bufs.occupants[dst].extend(new)
        return bufs.features.to("cpu", copy=True).numpy(), new

    def _launch(self, bufs: _Buffers, batch: int, src: int, dst: int) -> None:
        device = self.device
        replay = bufs.graphs.get(src)
        device.begin()
        if replay is not None:
            replay()
        else:
            b = bufs.binding
            b.shapes(batch, bufs.frames, bufs.states[src])
            b.addresses(
                {
                    INPUT_NAMES[0]: bufs.frames,
                    INPUT_NAMES[1]: bufs.states[src],
                    OUTPUT_NAMES[0]: bufs.features,
                    OUTPUT_NAMES[1]: bufs.states[dst],
                }
            )
            b.execute(device.stream_handle())  # the step itself (and the warm-up a capture needs)
            if self._graphs:
                bufs.graphs[src] = device.capture(lambda: b.execute(device.stream_handle()))
                log.info(
                    "captured a CUDA graph of the TensorRT step (batch %d, parity %d)", batch, src
                )
        device.end()

    def _release(self) -> None:
        self._buffers.clear()
        self._shared = None


# --------------------------------------------------------------- entry points
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
