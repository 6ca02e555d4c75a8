"""OpenVINO backend: the exported ONNX step compiled by OpenVINO (CPU, GPU, NPU or AUTO).

Precisions:

- ``fp32``: ``INFERENCE_PRECISION_HINT f32`` (exact to ~1e-5 of torch).
- ``bf16``: ``INFERENCE_PRECISION_HINT bf16`` (AMX / AVX-512 BF16 kernels on CPUs that
  have them; refused where the device does not report ``BF16``).
- ``int8``: post-training quantisation with NNCF (`quantize_ir`, the preset and SmoothQuant
  of `rvm_ros.runtime.backends.openvino_int8.Int8Recipe`; the layers NNCF leaves
  unquantised run in bf16 where the CPU has it, else f32), calibrated on frames
  the user gives (``calibration=``: a video file or ``.npy``) or on synthetic frames; the
  quantised IR is cached next to the export, with a JSON record of its calibration data
  and its accuracy (per-token cosine to float32 on held-out frames).

One compiled model (static shapes: faster on CPU than a dynamic batch axis) and one
`InferRequest` with pre-allocated input tensors per batch size. Compiled blobs go to
OpenVINO's model cache (``CACHE_DIR``, under the project cache), so a restart skips
compilation. States are host arrays (``[N, D]`` float32 per camera; OpenVINO's CPU
device works on host memory): the step writes them into the request's state tensor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rvm_ros.fsutil import atomic_write, staged_output
from rvm_ros.runtime.backends.openvino_int8 import (
    DEFAULT_RECIPE,
    Calibration,
    Int8Recipe,
    calibration_frames,
    nncf_quantize,
    stream_states,
    token_cosine,
)
from rvm_ros.runtime.base import BackendUnavailable, Encoder, EncoderInfo, InputError
from rvm_ros.runtime.onnx.export import INPUT_NAMES, OUTPUT_NAMES
from rvm_ros.signals import keep_signal_stack

if TYPE_CHECKING:  # untyped packages: these names document the objects, mypy sees Any
    import openvino as ov

log = logging.getLogger(__name__)

# OpenVINO compile properties (`compile_config`): names to strings, numbers or flags.
OvConfig = dict[str, str | int | bool]

OV_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")
OV_DEVICES: tuple[str, ...] = ("CPU", "GPU", "NPU", "AUTO")
QUANTIZER_VERSION = 2  # bump when `quantize_ir` changes what it writes (2: `Int8Recipe`)

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "bf16"}
_CAPABILITY = {"bf16": "BF16", "fp16": "FP16", "int8": "INT8"}


def openvino_available() -> tuple[bool, str]:
    """Whether OpenVINO imports, and a reason either way (its version, or the error)."""
    try:
        import openvino as ov
    except ImportError as exc:
        return False, (
            f"openvino is not installed ({exc}); install it with `pip install rvm_ros[openvino]`"
        )
    return True, f"openvino {ov.get_version()}"


def _import_openvino() -> types.ModuleType:
    ok, why = openvino_available()
    if not ok:
        raise BackendUnavailable(f"the openvino backend cannot run: {why}")
    import openvino

    module: types.ModuleType = openvino
    return module


def _import_nncf() -> types.ModuleType:
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailable(
            f"int8 on openvino needs nncf ({exc}); install it with `pip install rvm_ros[openvino]`"
        ) from exc
    module: types.ModuleType = nncf
    return module


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def device_name(device: str | None) -> str:
    """The OpenVINO device of a runtime ``device`` string (``None``/``cpu`` -> ``CPU``).

    Raises:
        BackendUnavailable: a device OpenVINO has no plugin name for (e.g. ``cuda``).
    """
    name = (device or "CPU").upper()
    base = name.split(".", 1)[0].split(":", 1)[0]
    if base not in OV_DEVICES:
        raise BackendUnavailable(
            f"the openvino backend runs on {', '.join(OV_DEVICES)} (Intel devices), not {device!r}"
        )
    return name


def compile_config(precision: str, device: str, threads: int | None, bf16: bool = True) -> OvConfig:
    """Compile properties: latency hint, one stream, the precision hint, threads (CPU).

    ``int8`` models run their unquantised layers in bf16 when ``bf16`` (the device has
    it; measured slightly faster than f32 with the same accuracy bound), else f32.

    CPU threads are not pinned (``ENABLE_CPU_PINNING`` off): on a machine shared with
    other work, pinned threads wait for busy cores (measured slower with pinning on a
    loaded machine; the figures are in docs/BENCHMARKS.md).
    """
    config: OvConfig = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": _HINTS[precision] if bf16 or precision != "int8" else "f32",
    }
    if device.startswith("CPU"):
        config["INFERENCE_NUM_THREADS"] = int(threads or usable_cores())
        config["ENABLE_CPU_PINNING"] = False
    return config


def blob_dir(cache: Path, device: str, config: OvConfig, version: str) -> Path:
    """OpenVINO's compiled-model cache folder for one device and compile configuration.

    One folder per configuration, not one shared folder: OpenVINO 2026.4's CPU cache key
    ignores ``INFERENCE_PRECISION_HINT`` (seen here: a bf16 compile after an fp32 one of
    the same model, sharing ``CACHE_DIR``, loaded the fp32 blob and returned NaN, and a
    later start crashed on it).
    """
    text = json.dumps({"device": device, "config": config, "openvino": version}, sort_keys=True)
    return cache / "openvino" / "blobs" / hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LayerRecord:
    """One executed layer of a compiled model (OpenVINO's performance counters).

    Attributes:
        name: the layer (its fused name in the compiled graph).
        node_type: the plugin's node type (``FullyConnected``, ``Subgraph``, ``MVN``, ...).
        exec_type: the kernel that ran (``brgemm_avx512_amx_I8``, ``jit_avx512_bf16``, ...).
        real_us: wall time of the layer in microseconds.
        fused: the source-model layers it runs (``originalLayersNames``, comma-separated).
    """

    name: str
    node_type: str
    exec_type: str
    real_us: float
    fused: str = ""


def quantize_ir(
    onnx_path: Path,
    dst: Path,
    frames: np.ndarray,
    source: str,
    *,
    tokens: int,
    dim: int,
    threads: int | None = None,
    recipe: Int8Recipe = DEFAULT_RECIPE,
) -> Calibration:
    """Quantise an ONNX step to an int8 OpenVINO IR with NNCF (static, per-channel weights).

    The float32 model streams ``frames`` from the zero state; the (frame, state) pairs of
    the first three quarters calibrate the activation ranges (``ModelType.TRANSFORMER``,
    the preset and SmoothQuant of ``recipe``); the last quarter is held out to measure
    what the int8 model keeps of float32. ``dst`` (``.xml`` + ``.bin``) and ``dst.json``
    (the `Calibration`) are written beside and swapped in.

    Raises:
        BackendUnavailable: nncf is not installed.
    """
    with keep_signal_stack():  # NNCF and compiling replace the thread's signal stack
        return _quantize_ir(
            onnx_path, dst, frames, source, tokens=tokens, dim=dim, threads=threads, recipe=recipe
        )


def _quantize_ir(
    onnx_path: Path,
    dst: Path,
    frames: np.ndarray,
    source: str,
    *,
    tokens: int,
    dim: int,
    threads: int | None = None,
    recipe: Int8Recipe = DEFAULT_RECIPE,
) -> Calibration:
    """:func:`quantize_ir` without the signal-stack guard."""
    ov_mod = _import_openvino()
    nncf = _import_nncf()
    start = time.perf_counter()
    core = ov_mod.Core()
    model = core.read_model(str(onnx_path))
    height, width = frames.shape[1:3]
    model.reshape({"frames": [1, height, width, 3], "state": [1, tokens, dim]})
    ref = core.compile_model(model, "CPU", compile_config("fp32", "CPU", threads))
    ref_req = ref.create_infer_request()
    fit = max(1, (len(frames) * 3) // 4)
    states = stream_states(ref_req, frames, tokens, dim)
    items = [{"frames": frames[t][None], "state": states[t]} for t in range(fit)]
    quantized = nncf_quantize(nncf, model, items, recipe)
    seconds = time.perf_counter() - start
    bf16 = "BF16" in list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    q_req = core.compile_model(
        quantized, "CPU", compile_config("int8", "CPU", threads, bf16)
    ).create_infer_request()
    held = frames[fit:]
    want = np.concatenate(stream_states(ref_req, held, tokens, dim)[1:])
    got = np.concatenate(stream_states(q_req, held, tokens, dim)[1:])
    cos = token_cosine(got, want)
    record = Calibration(
        source=source,
        frames=len(frames),
        fit=fit,
        cosine=float(cos.mean()) if cos.size else float("nan"),
        cosine_min=float(cos.min()) if cos.size else float("nan"),
        seconds=seconds,
    )
    save_ir(quantized, dst)
    record_text = json.dumps(asdict(record), indent=2) + "\n"
    atomic_write(dst.with_suffix(".json"), lambda tmp: tmp.write_text(record_text))
    log.info(
        "int8 IR %s: calibrated on %d frames of %s, held-out cosine %.5f (min %.5f)",
        dst,
        fit,
        source,
        record.cosine,
        record.cosine_min,
    )
    return record


def save_ir(model: ov.Model, dst: Path) -> None:
    """Save an OpenVINO IR as ``dst`` (``.xml``) and its ``.bin``, each built beside and
    swapped in (`rvm_ros.fsutil.staged_output`), the ``.bin`` first."""
    ov_mod = _import_openvino()
    with staged_output(dst, force=True, what="OpenVINO IR") as xml:
        written_bin = xml.with_suffix(".bin")  # OpenVINO names the weights after the .xml
        try:
            ov_mod.save_model(model, str(xml), compress_to_fp16=False)
            with staged_output(dst.with_suffix(".bin"), force=True, what="IR weights") as bin_:
                written_bin.rename(bin_)
        finally:
            written_bin.unlink(missing_ok=True)


def quantized_ir(
    onnx_path: Path,
    calibration: str | Path | None,
    *,
    height: int,
    width: int,
    tokens: int,
    dim: int,
    cache: Path,
    threads: int | None = None,
    recipe: Int8Recipe = DEFAULT_RECIPE,
) -> tuple[Path, Calibration]:
    """The cached int8 IR of ``onnx_path`` for a calibration source (made when missing).

    Keyed by the export file (path, size, mtime), the calibration frames' content, the
    ``recipe`` and `QUANTIZER_VERSION` with the nncf / openvino versions.
    """
    import nncf

    ov = _import_openvino()
    frames, source = calibration_frames(calibration, height, width)
    st = onnx_path.stat()
    digest = hashlib.sha256()
    for part in (
        str(onnx_path.resolve()),
        str(st.st_size),
        str(st.st_mtime_ns),
        str(QUANTIZER_VERSION),
        recipe.key,
        nncf.__version__,
        ov.get_version(),
    ):
        digest.update(part.encode() + b"|")
    digest.update(frames.tobytes())
    dst = cache / "openvino" / f"{onnx_path.stem}.int8-{digest.hexdigest()[:16]}.xml"
    meta = dst.with_suffix(".json")
    if dst.is_file() and dst.with_suffix(".bin").is_file() and meta.is_file():
        record = Calibration(**json.loads(meta.read_text()))
        return dst, record
    log.info("quantising %s to int8 with nncf (calibration: %s)", onnx_path.name, source)
    record = quantize_ir(
        onnx_path, dst, frames, source, tokens=tokens, dim=dim, threads=threads, recipe=recipe
    )
    return dst, record


def device_capabilities(core: ov.Core, dev: str, precision: str) -> list[str]:
    """The CPU's ``OPTIMIZATION_CAPABILITIES``, after checking that ``dev`` is present
    and (on the CPU) runs ``precision``.

    Raises:
        BackendUnavailable: the device is absent or the CPU lacks the precision.
    """
    present = list(core.available_devices)
    base = dev.split(".", 1)[0]
    if base != "AUTO" and not any(d.split(".", 1)[0] == base for d in present):
        raise BackendUnavailable(
            f"OpenVINO device {dev} is not present here (devices: {present or 'none'})"
        )
    caps = [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    if base == "CPU" and _CAPABILITY.get(precision, "") not in ("", *caps):
        raise BackendUnavailable(
            f"this CPU does not run {precision} in OpenVINO (OPTIMIZATION_CAPABILITIES: {caps})"
        )
    return caps


def check_model_io(model: ov.Model, path: Path, height: int, width: int) -> None:
    """Check that ``model`` is an RVM step for frames ``height x width``.

    Raises:
        InputError: other input / output names, or another frame size.
    """
    got_in = tuple(i.get_any_name() for i in model.inputs)
    got_out = tuple(o.get_any_name() for o in model.outputs)
    if got_in != INPUT_NAMES or got_out != OUTPUT_NAMES:
        raise InputError(
            f"{path} is not an RVM step export: inputs {got_in}, outputs {got_out} "
            f"(expected {INPUT_NAMES} -> {OUTPUT_NAMES})"
        )
    frame_shape = model.inputs[0].get_partial_shape()
    if [int(d.get_length()) for d in list(frame_shape)[1:]] != [height, width, 3]:
        raise InputError(
            f"{path} was exported for frames {frame_shape}, not [?, {height}, {width}, 3]"
        )


class OpenVINOEncoder(Encoder[np.ndarray]):
    """Runs an exported step with OpenVINO; states are host float32 arrays ``[N, D]``.

    Args:
        onnx_path: the float32 ONNX step (from `rvm_ros.runtime.cache`).
        model_id: model facts recorded in `EncoderInfo`.
        dim: feature width D.
        patch_size: patch size in pixels.
        height: frame height.
        width: frame width.
        precision: ``fp32``, ``bf16``, ``int8`` (``fp16`` on GPU / NPU).
        device: ``cpu`` / ``CPU`` (default), ``GPU``, ``NPU`` or ``AUTO``.
        max_batch: largest batch `step` accepts.
        threads: CPU inference threads (default: the usable cores).
        cache: the project cache folder (OpenVINO's compiled-model cache lives in
            ``<cache>/openvino``, beside the int8 IRs).
        calibration: int8 only: frames to calibrate on (video / ``.npy``), default synthetic.
        reason: recorded in `EncoderInfo.reason`.
        int8_recipe: int8 only: the NNCF preset and SmoothQuant (`Int8Recipe`).
        options: extra OpenVINO compile properties laid over `compile_config`'s (e.g.
            ``{"PERF_COUNT": True}`` for `profiling_info`).

    Raises:
        BackendUnavailable: OpenVINO (or nncf for int8) is missing, the device is absent,
            or it does not run the precision.
        InputError: the ONNX file is not an RVM step for this size.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        model_id: str,
        dim: int,
        patch_size: int,
        height: int,
        width: int,
        precision: str = "fp32",
        device: str | None = None,
        max_batch: int = 8,
        threads: int | None = None,
        cache: str | Path,
        calibration: str | Path | None = None,
        reason: str = "requested",
        options: OvConfig | None = None,
        int8_recipe: Int8Recipe = DEFAULT_RECIPE,
    ) -> None:
        ov_mod = _import_openvino()
        if precision not in OV_PRECISIONS:
            raise BackendUnavailable(
                f"precision {precision!r} is not supported by the openvino backend "
                f"(choose one of {list(OV_PRECISIONS)})"
            )
        # Loading the CPU plugin and compiling replace the thread's alternate signal stack.
        with keep_signal_stack():
            dev = device_name(device)
            self._core = ov_mod.Core()
            caps = device_capabilities(self._core, dev, precision)
            path = Path(onnx_path)
            if not path.is_file():
                raise InputError(f"ONNX file not found: {path}")
            self._tokens = 1 + (height // patch_size) * (width // patch_size)
            self._dim = int(dim)
            cache_root = Path(cache)
            self.calibration: Calibration | None = None
            if precision == "int8":
                path, self.calibration = quantized_ir(
                    path,
                    calibration,
                    height=height,
                    width=width,
                    tokens=self._tokens,
                    dim=self._dim,
                    cache=cache_root,
                    threads=threads,
                    recipe=int8_recipe,
                )
            self.model_path = path
            self._config = compile_config(precision, dev, threads, "BF16" in caps)
            self._config.update(options or {})
            self.blob_dir = blob_dir(cache_root, dev, self._config, ov_mod.get_version())
            self.blob_dir.mkdir(parents=True, exist_ok=True)
            self._core.set_property({"CACHE_DIR": str(self.blob_dir)})
            self._model: ov.Model | None = self._core.read_model(str(path))
            check_model_io(self._model, path, height, width)
            self._device = dev
            self._requests: dict[int, ov.InferRequest] = {}
            info = EncoderInfo(
                backend="openvino",
                precision=precision,
                device=dev.lower() if dev == "CPU" else dev,
                model_id=model_id,
                dim=int(dim),
                patch_size=int(patch_size),
                height=int(height),
                width=int(width),
                reason=reason,
            )
            super().__init__(info, max_batch)
            self._request(1)  # compile batch 1 now: a broken model fails at creation

    def _request(self, batch: int) -> ov.InferRequest:
        """The infer request of ``batch`` frames (its model compiled on first use)."""
        req = self._requests.get(batch)
        if req is None:
            if self._model is None:
                raise RuntimeError("openvino encoder is closed")
            model = self._model.clone()
            info = self.info
            model.reshape(
                {
                    "frames": [batch, info.height, info.width, 3],
                    "state": [batch, self._tokens, self._dim],
                }
            )
            start = time.perf_counter()
            with keep_signal_stack():  # compiling replaces the thread's signal stack
                compiled = self._core.compile_model(model, self._device, self._config)
                req = compiled.create_infer_request()
            log.info(
                "openvino compiled batch %d on %s (%s) in %.1f s",
                batch,
                self._device,
                self.info.precision,
                time.perf_counter() - start,
            )
            self._requests[batch] = req
        return req

    def profiling_info(self, batch: int = 1) -> list[LayerRecord]:
        """Per-layer times of the last step of ``batch`` frames (OpenVINO's performance
        counters: the encoder must be made with ``options={"PERF_COUNT": True}``).

        Raises:
            RuntimeError: no step of ``batch`` frames has run yet.
        """
        req = self._requests.get(batch)
        if req is None:
            raise RuntimeError(f"no openvino step of batch {batch} has run")
        fused = {}
        for op in req.get_compiled_model().get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if "originalLayersNames" in info:
                fused[op.get_friendly_name()] = str(info["originalLayersNames"].astype(str))
        return [
            LayerRecord(
                name=str(p.node_name),
                node_type=str(p.node_type),
                exec_type=str(p.exec_type),
                real_us=p.real_time.total_seconds() * 1e6,
                fused=fused.get(str(p.node_name), ""),
            )
            for p in req.get_profiling_info()
            if p.status == p.Status.EXECUTED
        ]

    def _run(
        self, frames: np.ndarray, states: list[np.ndarray | None]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        batch = frames.shape[0]
        req = self._request(batch)
        frames_in = req.get_tensor("frames").data  # pre-allocated [B, H, W, 3] uint8
        state_in = req.get_tensor("state").data  # pre-allocated [B, N, D] float32
        np.copyto(frames_in, frames)
        for i, s in enumerate(states):
            if s is None:
                state_in[i].fill(0.0)
            else:
                np.copyto(state_in[i], s)
        req.infer()
        features = np.array(req.get_tensor("features").data, dtype=np.float32, copy=True)
        # The features are the new state minus the model's feature centre, if it has one;
        # one state copy per camera (the request's buffer is reused by the next step).
        new_state = req.get_tensor("new_state").data
        return features, [np.array(new_state[i], dtype=np.float32, copy=True) for i in range(batch)]

    def _release(self) -> None:
        with keep_signal_stack():  # releasing a compiled model resets the signal stack
            self._requests.clear()
            self._model = None
