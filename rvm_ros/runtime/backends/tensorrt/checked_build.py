"""TensorRT engines of an exported ONNX step: built, checked against ONNX Runtime, kept.

`cached_engine` looks the engine up in the cache (``<cache>/engines/<model_id>-<key>.plan``;
the key covers the ONNX file's sha256, the TensorRT version, the GPU and its compute
capability, the precision, the shapes and the build flags). When missing it is built
(minutes), checked against ONNX Runtime (`check`: above the precision's bound
the start fails and nothing is cached, unless ``accept_build_error``), written
atomically with its JSON sidecar, and older engines of the model are pruned.
`build_plan_file` builds and checks the same way into a plan file of the caller's
choosing (``rvm-ros export --format engine``). Builds share a timing cache.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from rvm_ros.fsutil import file_sha256
from rvm_ros.runtime.backends.tensorrt.build import BuildOptions, build_plan
from rvm_ros.runtime.backends.tensorrt.check import (
    BuildCheck,
    EngineCheckFailed,
    check_inputs,
    compare_outputs,
)
from rvm_ros.runtime.backends.tensorrt.device import EngineDevice, cuda_errors
from rvm_ros.runtime.backends.tensorrt.engine import (
    Binding,
    LoadedEngine,
    deserialize,
    engine_where,
    load_plan,
    verify_io,
)
from rvm_ros.runtime.backends.tensorrt.plan import PlanError, PlanSidecar, write_plan
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

__all__ = ["build_plan_file", "cached_engine"]


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
    binding = Binding(engine, where)
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
        runtime, engine = deserialize(data, where, options.version_compatible)
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
    where = engine_where(plan, key)
    if plan.is_file():
        try:
            loaded = load_plan(plan, device, accept_build_error)
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
