"""`rvm-ros export` library side: ONNX (fp32 or int8) and TensorRT engine files."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rvm_ros.runtime.backends.tensorrt.check import BuildCheck
from rvm_ros.runtime.base import BackendUnavailable, InputError
from rvm_ros.runtime.onnx.export import VerifyReport, export_onnx, verify_onnx

if TYPE_CHECKING:
    from rvm_ros.model import RVM
    from rvm_ros.runtime.backends.tensorrt import EngineDevice
    from rvm_ros.runtime.source import CheckpointSource

log = logging.getLogger(__name__)

FORMATS = ("onnx", "engine")


@dataclass
class ExportResult:
    """What `export_model` wrote and measured.

    Attributes:
        path: the file written.
        format: ``onnx`` or ``engine``.
        precision: its precision.
        model_id: the model's id.
        verify: checks of the float32 ONNX graph (checker, ORT vs torch, polygraphy).
        int8_cosine: int8 ONNX only: mean per-token cosine of its features vs float32.
        engine_check: engine only: the build check of the engine against ONNX Runtime.
        sidecar: engine only: the JSON sidecar written next to the plan.
        build_seconds: engine only: how long TensorRT took to build it.
    """

    path: Path
    format: str
    precision: str
    model_id: str
    verify: VerifyReport
    int8_cosine: float | None = None
    engine_check: BuildCheck | None = None
    sidecar: Path | None = None
    build_seconds: float | None = None


def export_model(
    checkpoint: CheckpointSource,
    out: str | Path,
    *,
    height: int = 256,
    width: int = 256,
    max_batch: int = 8,
    fmt: str = "onnx",
    precision: str = "fp32",
    tolerance: float = 1e-4,
    say: Callable[[str], None] | None = None,
    device: str | None = None,
    accept_build_error: bool = False,
    version_compatible: bool = False,
    hardware_compatibility: str = "none",
    cache: str | Path | None = None,
    engine_device: EngineDevice | None = None,
) -> ExportResult:
    """Export one recurrent step of a checkpoint.

    ``onnx``: the float32 graph (``precision=fp32``), or its int8 dynamic quantization
    (``precision=int8``, for the onnxruntime CPU backend). ``engine``: a TensorRT plan in
    fp32 / fp16 / bf16 with a batch profile ``1..max_batch``, built on this machine's GPU,
    written with its JSON sidecar (``<out>.json``) only when it passes the build check
    against ONNX Runtime (`rvm_ros.runtime.backends.tensorrt.check`) or
    ``accept_build_error`` is set. The float32 graph is always checked first:
    `onnx.checker`, ONNX Runtime vs torch on random input (max abs error at most
    ``tolerance``), polygraphy inspection.

    Engine-only arguments: ``device`` (``cuda[:i]``), ``accept_build_error``,
    ``version_compatible`` and ``hardware_compatibility`` (see
    `rvm_ros.runtime.backends.tensorrt.build.BuildOptions`), ``cache`` (its timing cache
    is used; default the runtime cache folder) and ``engine_device`` (replaces the CUDA
    device: tests with a stand-in TensorRT).

    Raises:
        InputError: bad format / precision / size.
        BackendUnavailable: ``engine`` without TensorRT.
        ExportError: the export or a check failed.
        EngineCheckFailed: the engine failed its build check (nothing written).
        TensorRTError: a TensorRT call failed (nothing written).
    """
    from rvm_ros.runtime.source import load_any

    _check_request(fmt, precision, max_batch, stand_in=engine_device is not None)
    say = say or (lambda _line: None)
    out = Path(out)
    model = load_any(checkpoint)
    with tempfile.TemporaryDirectory(prefix="rvm_export_") as tmp:
        onnx_path = out if (fmt == "onnx" and precision == "fp32") else Path(tmp) / "step.onnx"
        say(f"exporting {model.model_id} at {height}x{width} (batch 1..{max_batch}) to ONNX")
        export_onnx(model, onnx_path, height, width, max_batch=max(max_batch, 2))
        batches = (1, 2) if max_batch >= 2 else (1,)
        report = verify_onnx(
            onnx_path, model, height, width, batch_sizes=batches, tolerance=tolerance
        )
        say(
            f"onnx.checker: ok; ONNX Runtime vs torch max abs error {report.max_abs_error:.3g} "
            f"(batches {list(batches)}); {report.nodes} nodes, opset {report.opset}"
        )
        result = ExportResult(out, fmt, precision, str(model.model_id), report)
        if fmt == "onnx" and precision == "int8":
            result.int8_cosine = _quantize(onnx_path, out, model, height, width)
            say(f"int8: mean per-token cosine vs float32 {result.int8_cosine:.5f}")
        elif fmt == "engine":
            options = EngineOptions(
                device=device,
                accept_build_error=accept_build_error,
                version_compatible=version_compatible,
                hardware_compatibility=hardware_compatibility,
                cache=cache,
                engine_device=engine_device,
            )
            _build_engine(onnx_path, out, result, max_batch, options, say)
    return result


def _check_request(fmt: str, precision: str, max_batch: int, stand_in: bool) -> None:
    """Refuse an unknown format, a precision the format does not have, a batch below 1, or
    an engine without TensorRT (unless a ``stand_in`` engine device is given)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {list(FORMATS)}")
    allowed = {"onnx": ("fp32", "int8"), "engine": ("fp32", "fp16", "bf16")}[fmt]
    if precision not in allowed:
        hint = (
            "; reduced float precision is applied when TensorRT builds an engine (--format engine)"
            if fmt == "onnx"
            else ""
        )
        raise InputError(
            f"precision {precision!r} is not available for --format {fmt} "
            f"(choose one of {list(allowed)}){hint}"
        )
    if max_batch < 1:
        raise InputError(f"max_batch must be at least 1, got {max_batch}")
    if fmt == "engine" and not stand_in:
        from rvm_ros.runtime.backends.tensorrt import tensorrt_available

        ok, why = tensorrt_available()
        if not ok:
            raise BackendUnavailable(f"cannot build a TensorRT engine: {why}")


@dataclass(frozen=True)
class EngineOptions:
    """The engine-only arguments of `export_model` (see there)."""

    device: str | None
    accept_build_error: bool
    version_compatible: bool
    hardware_compatibility: str
    cache: str | Path | None
    engine_device: EngineDevice | None


def _build_engine(
    onnx_path: Path,
    out: Path,
    result: ExportResult,
    max_batch: int,
    options: EngineOptions,
    say: Callable[[str], None],
) -> None:
    """Build the TensorRT plan of ``onnx_path`` into ``out`` and record it in ``result``."""
    from rvm_ros.runtime.backends.tensorrt import CudaDevice, build_plan_file
    from rvm_ros.runtime.backends.tensorrt.build import BuildOptions
    from rvm_ros.runtime.cache import cache_dir

    precision = result.precision
    build = BuildOptions(
        precision=precision,
        max_batch=max_batch,
        version_compatible=options.version_compatible,
        hardware_compatibility=options.hardware_compatibility,
    )
    dev = options.engine_device or CudaDevice(options.device)
    say(
        f"building TensorRT {precision} engine (batch 1..{max_batch}) on {dev.name}; "
        "this takes minutes"
    )
    built = build_plan_file(
        onnx_path,
        out,
        build,
        dev,
        cache=cache_dir(options.cache),
        accept_build_error=options.accept_build_error,
    )
    assert built.build_check is not None  # set by every build
    result.engine_check = built.build_check
    result.sidecar = out.with_name(out.name + ".json")
    result.build_seconds = built.sidecar.build_seconds
    say(f"build check: {built.build_check.describe()}")


def _quantize(src: Path, out: Path, model: RVM, height: int, width: int) -> float:
    import numpy as np
    import onnxruntime as ort
    import torch

    from rvm_ros.imaging.synthetic import synthetic_frames
    from rvm_ros.runtime.backends.onnxruntime import quantize_int8
    from rvm_ros.runtime.onnx.export import write_metadata

    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_int8(src, out)
    write_metadata(out, model, height, width)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    frames = synthetic_frames(3, 1, height, width)
    state = np.zeros((1, model.config.num_tokens(height, width), model.config.dim), np.float32)
    ref = model.init_state(1, height, width)
    cos = []
    for t in range(len(frames)):
        state = sess.run(["new_state"], {"frames": frames[t], "state": state})[0]
        with torch.inference_mode():
            _, ref = model.step(torch.from_numpy(frames[t]), ref)  # compare the states
        r = ref.numpy()
        cos.append(
            (state * r).sum(-1) / (np.linalg.norm(state, axis=-1) * np.linalg.norm(r, axis=-1))
        )
    return float(np.mean(cos))
