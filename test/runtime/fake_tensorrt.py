"""A stand-in for the ``tensorrt`` module, for tests on a machine without TensorRT or GPU.

THIS IS NOT TENSORRT. It implements only the calls rvm_ros makes, with their return
conventions (booleans for ``set_input_shape`` / ``set_tensor_address`` /
``execute_async_v3`` / ``set_timing_cache``, ``None`` for a failed deserialization), so
that the control flow around them (tensor names, shapes, addresses, the build-check gate,
sidecars, the engine and timing caches, buffer swapping, graph capture) can be tested.
Nothing here says anything about TensorRT's numerics or speed.

An "engine" is the JSON text of what was "built"; executing it runs the ONNX step with
ONNX Runtime on the memory at the bound addresses (CPU torch tensors), optionally with
noise added (to fail the build check on purpose). Graph capture records the addresses
bound at capture time and replays with them, as a CUDA graph would.

Knobs: `BUILD` (what the next build produces) and `LOG` (what happened), reset by `reset`.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Any

import numpy as np

__version__ = "10.13.0.35"

BUILD: dict[str, Any] = {}
LOG: dict[str, list[Any]] = {}
_SESSIONS: dict[str, Any] = {}
_CAPTURE: list[list[tuple[Any, dict[str, int], dict[str, tuple[int, ...]]]]] = []


def reset(**build: Any) -> None:
    """Clear the log; set the next builds' knobs (``noise``, ``rename``, ``fail``)."""
    BUILD.clear()
    BUILD.update({"noise": 0.0, "rename": {}, "fail": False, **build})
    LOG.clear()
    LOG.update(builds=[], executes=[], timing_loaded=[], captures=[], host_code=[])


reset()


class Logger:
    WARNING = 2

    def __init__(self, severity: int = 2) -> None:
        self.severity = severity


class NetworkDefinitionCreationFlag:
    EXPLICIT_BATCH = 0


class MemoryPoolType:
    WORKSPACE = "workspace"


class BuilderFlag:
    FP16, BF16, TF32, VERSION_COMPATIBLE = "fp16", "bf16", "tf32", "version_compatible"


class HardwareCompatibilityLevel:
    NONE, AMPERE_PLUS, SAME_COMPUTE_CAPABILITY = "none", "ampere_plus", "same_cc"


class TensorIOMode:
    INPUT, OUTPUT = "input", "output"


class DataType:
    UINT8, FLOAT = "uint8", "float32"


class Dims(list[int]):
    pass


class _Network:
    onnx: str | None = None


class OnnxParser:
    def __init__(self, network: _Network, logger: Logger) -> None:
        self.network, self.num_errors = network, 0

    def parse_from_file(self, path: str) -> bool:
        if not Path(path).is_file():
            self.num_errors = 1
            return False
        self.network.onnx = path
        return True

    def get_error(self, i: int) -> str:
        return "file not found"


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)

    def serialize(self) -> memoryview:
        return memoryview(self.data + b"|timed")


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[list[int], list[int], list[int]]] = {}

    def set_shape(self, name: str, lo: Dims, opt: Dims, hi: Dims) -> None:
        self.shapes[name] = (list(lo), list(opt), list(hi))


class _Config:
    def __init__(self) -> None:
        self.flags = {BuilderFlag.TF32}
        self.profiles: list[_Profile] = []
        self.timing: _TimingCache | None = None
        self.hardware_compatibility_level = HardwareCompatibilityLevel.NONE

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        pass

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: str) -> None:
        self.flags.discard(flag)

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        return _TimingCache(data)

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        if cache.data and not cache.data.startswith(b"FAKE-TC"):
            return False  # "a cache of another TensorRT / GPU"
        LOG["timing_loaded"].append(bytes(cache.data))
        cache.data = cache.data or b"FAKE-TC"
        self.timing = cache  # the builder updates this object in place
        return True

    def get_timing_cache(self) -> _TimingCache | None:
        return self.timing


class Builder:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def create_network(self, flags: int = 0) -> _Network:
        return _Network()

    def create_builder_config(self) -> _Config:
        return _Config()

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _Config) -> memoryview | None:
        if BUILD["fail"]:
            return None
        (profile,) = config.profiles
        if config.timing is not None:
            config.timing.data = bytes(config.timing.serialize())
        plan = {
            "onnx": network.onnx,
            "flags": sorted(config.flags),
            "hardware": config.hardware_compatibility_level,
            "max_batch": profile.shapes["frames"][2][0],
            "noise": BUILD["noise"],
            "rename": BUILD["rename"],
        }
        LOG["builds"].append(plan)
        return memoryview(json.dumps(plan).encode())


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.engine_host_code_allowed = False

    def deserialize_cuda_engine(self, data: bytes) -> _Engine | None:
        LOG["host_code"].append(self.engine_host_code_allowed)
        try:
            return _Engine(json.loads(bytes(data)))
        except (ValueError, UnicodeDecodeError):
            return None


_IO = {"frames": TensorIOMode.INPUT, "state": TensorIOMode.INPUT}
_IO.update({"features": TensorIOMode.OUTPUT, "new_state": TensorIOMode.OUTPUT})


class _Engine:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.names = [plan["rename"].get(n, n) for n in _IO]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> str:
        return _IO[{v: k for k, v in self.plan["rename"].items()}.get(name, name)]

    def get_tensor_dtype(self, name: str) -> str:
        return DataType.UINT8 if name == "frames" else DataType.FLOAT

    def create_execution_context(self) -> _Context:
        return _Context(self)


def _array(address: int, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    count = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.ctypeslib.as_array((ctypes.c_uint8 * count).from_address(address))
    return raw.view(dtype).reshape(shape)


class _Context:
    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        if name not in self.engine.names or _IO.get(name) != TensorIOMode.INPUT:
            return False
        if not 1 <= shape[0] <= self.engine.plan["max_batch"]:
            return False
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        if name not in self.engine.names:
            return False
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream: int) -> bool:
        if set(self.addresses) != set(_IO) or set(self.shapes) != {"frames", "state"}:
            return False
        if _CAPTURE:  # recorded, not run: a graph keeps the addresses of its capture
            _CAPTURE[-1].append((self, dict(self.addresses), dict(self.shapes)))
            return True
        _execute(self.engine, self.addresses, self.shapes)
        return True


def _execute(
    engine: _Engine, addresses: dict[str, int], shapes: dict[str, tuple[int, ...]]
) -> None:
    import onnxruntime as ort

    path = engine.plan["onnx"]
    if path not in _SESSIONS:
        _SESSIONS[path] = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    frames = _array(addresses["frames"], shapes["frames"], np.uint8).copy()
    state = _array(addresses["state"], shapes["state"], np.float32).copy()
    outs = _SESSIONS[path].run(["features", "new_state"], {"frames": frames, "state": state})
    for name, value in zip(("features", "new_state"), outs, strict=True):
        value = value + np.float32(engine.plan["noise"])
        _array(addresses[name], shapes["state"], np.float32)[...] = value
    LOG["executes"].append({k: addresses[k] for k in ("state", "new_state")})


def capture(launch: Any) -> Any:
    """Record what ``launch`` enqueues; return a replay that runs it with those addresses."""
    _CAPTURE.append([])
    try:
        launch()
    finally:
        recorded = _CAPTURE.pop()
    LOG["captures"].append(len(recorded))

    def replay() -> None:
        for ctx, addresses, shapes in recorded:
            _execute(ctx.engine, addresses, shapes)

    return replay
