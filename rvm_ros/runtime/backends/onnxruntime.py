"""ONNX Runtime backend: the exported step, state fed back as an input/output.

CPU (float32, or int8 with dynamic quantization of the MatMul weights) and, where the
installed onnxruntime has it, the CUDA execution provider (float32), whose states stay on
the GPU in torch tensors bound with I/O binding.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import onnxruntime as ort

from rvm_ros.fsutil import atomic_write
from rvm_ros.runtime.base import BackendUnavailable, Encoder, EncoderInfo, InputError
from rvm_ros.runtime.cache import derived_file
from rvm_ros.runtime.onnx.export import INPUT_NAMES, OUTPUT_NAMES
from rvm_ros.runtime.onnx.optimize import OPTIMIZER_VERSION, optimize_for_ort

log = logging.getLogger(__name__)

ORT_PRECISIONS = ("fp32", "int8")


def ort_available() -> bool:
    """Whether onnxruntime imports."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamically quantize the MatMul weights of an ONNX step to int8 (per channel).

    Activations are quantized at run time (uint8), so no calibration data is needed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # quantize_dynamic warns through the root logger
    try:
        atomic_write(
            dst,
            lambda tmp: quantize_dynamic(
                str(src),
                str(tmp),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
            ),
        )
    finally:
        root.setLevel(level)
    return dst


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None, spin: bool = False) -> ort.SessionOptions:
    """ORT session options: all graph optimisations, ``threads`` intra-op threads.

    ``threads`` defaults to the usable cores (ONNX Runtime's own default would count
    the machine's cores, not this process's share). ``spin``: let idle intra-op threads
    spin-wait for work (ONNX Runtime's default). Off by default: on a CPU shared with
    other work the spinning threads take the cores the step needs (measured slower with
    spinning on a loaded machine; the figures are in docs/BENCHMARKS.md).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = int(threads or usable_cores())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


# A camera's state: host ``float32 [N, D]`` on the CPU, a torch tensor on the GPU (CUDA).
OrtState = np.ndarray | torch.Tensor
# Execution providers as `onnxruntime.InferenceSession` takes them: names or (name, options).
Provider = str | tuple[str, dict[str, int]]


def ort_device(device: str | None, precision: str, providers: list[str]) -> torch.device:
    """The torch device the session runs on (``cuda`` made ``cuda:0``).

    Raises:
        BackendUnavailable: CUDA without the CUDA execution provider or not in fp32, or a
            device that is neither ``cpu`` nor ``cuda``.
    """
    dev = torch.device(device or "cpu")
    if dev.type == "cuda":
        if "CUDAExecutionProvider" not in providers:
            raise BackendUnavailable(
                "device cuda requested but this onnxruntime has no CUDAExecutionProvider "
                f"(providers: {providers})"
            )
        if precision != "fp32":
            raise BackendUnavailable("the onnxruntime CUDA path runs fp32 only")
        if dev.index is None:
            dev = torch.device("cuda", 0)
    elif dev.type != "cpu":
        raise BackendUnavailable(f"onnxruntime backend runs on cpu or cuda, not {dev}")
    return dev


def prepared_model(path: Path, precision: str, optimize: bool) -> Path:
    """The ONNX file the session loads: ``path`` optimised for the CPU (``optimize``) and
    quantised (``int8``), each derived once and cached next to it (`derived_file`)."""
    if optimize and not any(x.startswith(".opt") for x in path.suffixes):
        path = derived_file(path, f".opt{OPTIMIZER_VERSION}", optimize_for_ort)
    if precision == "int8" and ".int8" not in path.suffixes:
        path = derived_file(path, ".int8", quantize_int8)
    return path


def providers_of(dev: torch.device) -> list[Provider]:
    """Execution providers for ``dev``: CUDA (with its device id) then CPU, or CPU only."""
    if dev.type == "cuda":
        return [("CUDAExecutionProvider", {"device_id": dev.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def check_session_io(session: ort.InferenceSession, path: Path, height: int, width: int) -> None:
    """Check that a session runs an RVM step of frames ``height x width``.

    Raises:
        InputError: other input / output names, or another frame size.
    """
    got_in = tuple(i.name for i in session.get_inputs())
    got_out = tuple(o.name for o in session.get_outputs())
    if got_in != INPUT_NAMES or got_out != OUTPUT_NAMES:
        raise InputError(
            f"{path} is not an RVM step export: inputs {got_in}, outputs {got_out} "
            f"(expected {INPUT_NAMES} -> {OUTPUT_NAMES})"
        )
    frame_shape = session.get_inputs()[0].shape
    if list(frame_shape[1:]) != [height, width, 3]:
        raise InputError(
            f"{path} was exported for frames {frame_shape[1:]}, not [{height}, {width}, 3]"
        )


class OrtEncoder(Encoder[OrtState]):
    """Runs an exported step with ONNX Runtime.

    Args:
        onnx_path: the float32 (or already quantized) ONNX step file.
        info_base: model facts (``model_id, dim, patch_size, height, width``).
        precision: ``fp32`` or ``int8`` (``int8``: ``onnx_path`` is quantized here,
            next to it, unless it already is ``*.int8.onnx``).
        device: ``cpu`` or ``cuda[:i]`` (CUDA execution provider, float32 only).
        max_batch: largest batch `step` accepts.
        threads: intra-op threads (default: all cores).
        spin: let idle threads spin-wait (see `session_options`; default off).
        optimize: run the CPU graph optimisations of `rvm_ros.runtime.onnx.optimize` first
            (written next to ``onnx_path`` as ``*.opt<version>.onnx``; fused attention, GELU,
            residual + LayerNorm).
        reason: recorded in `EncoderInfo.reason`.
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
        spin: bool = False,
        optimize: bool = True,
        reason: str = "requested",
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime is not installed: {exc}") from exc
        if precision not in ORT_PRECISIONS:
            raise BackendUnavailable(
                f"precision {precision!r} is not supported by the onnxruntime backend "
                f"(choose one of {list(ORT_PRECISIONS)}; bf16/fp16 run on torch or tensorrt)"
            )
        dev = ort_device(device, precision, ort.get_available_providers())
        path = Path(onnx_path)
        if not path.is_file():
            raise InputError(f"ONNX file not found: {path}")
        path = prepared_model(path, precision, optimize)
        self.onnx_path = path
        self.device = dev
        opts = session_options(threads, spin)
        self.session: ort.InferenceSession | None = ort.InferenceSession(
            str(path), sess_options=opts, providers=providers_of(dev)
        )
        check_session_io(self.session, path, height, width)
        self._tokens = 1 + (height // patch_size) * (width // patch_size)
        self._dim = int(dim)
        info = EncoderInfo(
            backend="onnxruntime",
            precision=precision,
            device=str(dev),
            model_id=model_id,
            dim=int(dim),
            patch_size=int(patch_size),
            height=int(height),
            width=int(width),
            reason=reason,
        )
        super().__init__(info, max_batch)

    def _session(self) -> ort.InferenceSession:
        if self.session is None:
            raise RuntimeError("onnxruntime encoder is closed")
        return self.session

    def _run(
        self, frames: np.ndarray, states: list[OrtState | None]
    ) -> tuple[np.ndarray, list[OrtState]]:
        if self.device.type == "cuda":
            return self._run_cuda(frames, states)
        batch = frames.shape[0]
        state = np.zeros((batch, self._tokens, self._dim), dtype=np.float32)
        for i, s in enumerate(states):
            if s is not None:
                state[i] = np.asarray(s)
        features, new_state = self._session().run(
            list(OUTPUT_NAMES), {"frames": frames, "state": state}
        )
        features = np.ascontiguousarray(features, dtype=np.float32)
        # The features are the new state minus the model's feature centre, if it has one.
        return features, [np.array(new_state[i], dtype=np.float32) for i in range(batch)]

    def _run_cuda(
        self, frames: np.ndarray, states: list[OrtState | None]
    ) -> tuple[np.ndarray, list[OrtState]]:  # pragma: no cover - needs a CUDA onnxruntime
        batch = frames.shape[0]
        dev = self.device
        zero = torch.zeros(self._tokens, self._dim, device=dev)
        state = torch.stack([torch.as_tensor(s) if s is not None else zero for s in states])
        state = state.contiguous()
        x = torch.from_numpy(frames).to(dev)
        out = torch.empty(batch, self._tokens, self._dim, device=dev)
        out_state = torch.empty_like(out)
        session = self._session()
        binding = session.io_binding()
        for name, t, etype in (("frames", x, np.uint8), ("state", state, np.float32)):
            binding.bind_input(name, "cuda", dev.index, etype, list(t.shape), t.data_ptr())
        for name, t in (("features", out), ("new_state", out_state)):
            binding.bind_output(name, "cuda", dev.index, np.float32, list(t.shape), t.data_ptr())
        torch.cuda.current_stream(dev).synchronize()
        session.run_with_iobinding(binding)
        return out.cpu().numpy(), list(out_state.unbind(0))

    def _release(self) -> None:
        self.session = None
