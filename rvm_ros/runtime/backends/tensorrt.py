"""TensorRT backend: an engine built from the exported ONNX step, cached on disk.

The engine has one optimisation profile over the batch (camera) dimension
(``1 .. max_batch``) and is built in fp32, fp16 or bf16. The plan file is cached under a
key made of the ONNX file's sha256, the TensorRT version, the GPU name, the precision and
the shapes (`engine_cache_key`), so it is rebuilt only when one of them changes. After a
build the engine is checked once against ONNX Runtime on random input and the max abs
error is logged (`TensorRTEncoder.build_check_error`). Device buffers and the CUDA stream
belong to torch; no pycuda.

TensorRT cannot be installed in this project's CI; this module imports it lazily and
`tensorrt_available` says why it cannot run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from rvm_ros.runtime.base import BackendUnavailable, EncoderInfo, StepRunner
from rvm_ros.runtime.onnx.export import OUTPUT_NAMES, file_sha256

log = logging.getLogger(__name__)

TRT_PRECISIONS = ("fp32", "fp16", "bf16")


def tensorrt_available() -> tuple[bool, str]:
    """Whether TensorRT can run here, and why not.

    Returns:
        ``(True, "tensorrt <version>")`` or ``(False, reason)``.
    """
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a stub wheel failing at import
        return False, f"tensorrt cannot be imported ({type(exc).__name__}: {exc})"
    if not torch.cuda.is_available():
        return False, "tensorrt is installed but torch sees no CUDA device"
    return True, f"tensorrt {trt.__version__}"


def engine_cache_key(
    onnx_sha256: str,
    trt_version: str,
    gpu_name: str,
    precision: str,
    height: int,
    width: int,
    max_batch: int,
    opt_batch: int | None = None,
) -> str:
    """The cache key of an engine: a hex digest over everything the plan depends on.

    Args:
        onnx_sha256: sha256 of the ONNX file's bytes.
        trt_version: ``tensorrt.__version__``.
        gpu_name: ``torch.cuda.get_device_name()`` (plans are not portable between GPUs).
        precision: ``fp32``, ``fp16`` or ``bf16``.
        height: frame height.
        width: frame width.
        max_batch: upper bound of the batch profile (lower bound is 1).
        opt_batch: batch size the profile optimises for (default ``max_batch``).

    Returns:
        24 hex characters.

    Raises:
        ValueError: unknown precision or a batch bound below 1.
    """
    if precision not in TRT_PRECISIONS:
        raise ValueError(f"precision must be one of {list(TRT_PRECISIONS)}, got {precision!r}")
    opt = max_batch if opt_batch is None else opt_batch
    if max_batch < 1 or not 1 <= opt <= max_batch:
        raise ValueError(f"need 1 <= opt_batch ({opt}) <= max_batch ({max_batch})")
    fields = {
        "onnx": onnx_sha256,
        "trt": trt_version,
        "gpu": gpu_name,
        "precision": precision,
        "frames": [[1, height, width, 3], [opt, height, width, 3], [max_batch, height, width, 3]],
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def engine_cache_path(cache: Path, model_id: str, key: str) -> Path:
    """Where the plan for ``key`` lives: ``<cache>/engines/<model_id>-<key>.plan``."""
    return Path(cache) / "engines" / f"{model_id}-{key}.plan"


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    *,
    precision: str,
    height: int,
    width: int,
    tokens: int,
    dim: int,
    max_batch: int,
    opt_batch: int | None = None,
    workspace_gb: float = 4.0,
) -> Path:  # pragma: no cover - needs TensorRT
    """Build and serialise a TensorRT plan for the exported step.

    Raises:
        BackendUnavailable: TensorRT missing, or the ONNX parse / build failed.
    """
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # TensorRT 8.x (JetPack 6.0) needs it said
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        if not hasattr(trt.BuilderFlag, "BF16"):
            raise BackendUnavailable(f"TensorRT {trt.__version__} has no bf16 (needs 9 or later)")
        config.set_flag(trt.BuilderFlag.BF16)
    opt = max_batch if opt_batch is None else opt_batch
    profile = builder.create_optimization_profile()
    profile.set_shape(
        "frames", (1, height, width, 3), (opt, height, width, 3), (max_batch, height, width, 3)
    )
    profile.set_shape("state", (1, tokens, dim), (opt, tokens, dim), (max_batch, tokens, dim))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendUnavailable(f"TensorRT failed to build an engine from {onnx_path}")
    plan_path = Path(plan_path)
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan_path.with_name(f"{plan_path.name}.{os.getpid()}.part")
    tmp.write_bytes(bytes(plan))
    tmp.replace(plan_path)
    return plan_path


class TensorRTEncoder(StepRunner[torch.Tensor]):  # pragma: no cover - needs TensorRT + CUDA
    """Runs a TensorRT engine of the step; states are float32 CUDA tensors ``[N, D]``.

    Args:
        onnx_path: the float32 ONNX step (`export_onnx`).
        model_id: model id (names the cached plan).
        dim: feature width.
        patch_size: patch size.
        height: frame height.
        width: frame width.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        device: ``cuda[:i]``.
        max_batch: upper bound of the batch profile.
        cache: cache folder of plans.
        check: after a build, compare with ONNX Runtime on random input.
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
        precision: str = "fp16",
        device: str | None = None,
        max_batch: int = 8,
        cache: Path,
        check: bool = True,
        reason: str = "requested",
    ) -> None:
        ok, why = tensorrt_available()
        if not ok:
            raise BackendUnavailable(why)
        import tensorrt as trt

        if precision not in TRT_PRECISIONS:
            raise BackendUnavailable(
                f"precision {precision!r} is not supported by the tensorrt backend "
                f"(choose one of {list(TRT_PRECISIONS)})"
            )
        dev = torch.device(device or "cuda")
        if dev.type != "cuda":
            raise BackendUnavailable(f"the tensorrt backend runs on CUDA devices, not {dev}")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        self.device = dev
        self._tokens = 1 + (height // patch_size) * (width // patch_size)
        self._dim = int(dim)
        key = engine_cache_key(
            file_sha256(onnx_path),
            trt.__version__,
            torch.cuda.get_device_name(dev),
            precision,
            height,
            width,
            max_batch,
        )
        plan = engine_cache_path(cache, model_id, key)
        built = False
        if not plan.is_file():
            log.info("building TensorRT %s engine %s (this takes minutes)", precision, plan)
            with torch.cuda.device(dev):
                build_engine(
                    onnx_path,
                    plan,
                    precision=precision,
                    height=height,
                    width=width,
                    tokens=self._tokens,
                    dim=self._dim,
                    max_batch=max_batch,
                )
            built = True
        else:
            log.info("using cached TensorRT engine %s", plan)
        self.plan_path = plan
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        with torch.cuda.device(dev):
            self._engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
            if self._engine is None:
                raise BackendUnavailable(f"TensorRT could not load the plan {plan}; delete it")
            self._context = self._engine.create_execution_context()
        self._stream = torch.cuda.Stream(dev)
        info = EncoderInfo(
            backend="tensorrt",
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
        self.build_check_error: float | None = None
        if built and check:
            self.build_check_error = self._check_against_ort(onnx_path)
            log.warning(
                "TensorRT %s engine vs ONNX Runtime on random input: max abs error %.3g",
                precision,
                self.build_check_error,
            )

    def _execute(self, frames: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = frames.shape[0]
        out = torch.empty(batch, self._tokens, self._dim, device=self.device)
        out_state = torch.empty_like(out)
        ctx = self._context
        ctx.set_input_shape("frames", tuple(frames.shape))
        ctx.set_input_shape("state", tuple(state.shape))
        for name, t in (
            ("frames", frames),
            ("state", state),
            ("features", out),
            ("new_state", out_state),
        ):
            ctx.set_tensor_address(name, t.data_ptr())
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        if not ctx.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        return out, out_state

    def _run(
        self, frames: np.ndarray, states: list[torch.Tensor | None]
    ) -> tuple[np.ndarray, list[torch.Tensor]]:
        zero = torch.zeros(self._tokens, self._dim, device=self.device)
        state = torch.stack([s if s is not None else zero for s in states]).contiguous()
        x = torch.from_numpy(frames).to(self.device)
        out, out_state = self._execute(x, state)
        return out.cpu().numpy(), list(out_state.unbind(0))

    def _check_against_ort(self, onnx_path: str | Path) -> float:
        import onnxruntime as ort

        rng = np.random.default_rng(0)
        batch = min(2, self.max_batch)
        frames = rng.integers(0, 256, (batch, self.info.height, self.info.width, 3), np.uint8)
        state = rng.standard_normal((batch, self._tokens, self._dim)).astype(np.float32)
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        want = sess.run(list(OUTPUT_NAMES), {"frames": frames, "state": state})
        got = self._execute(
            torch.from_numpy(frames).to(self.device), torch.from_numpy(state).to(self.device)
        )
        return max(
            float(np.max(np.abs(g.cpu().numpy() - w))) for g, w in zip(got, want, strict=True)
        )

    def _release(self) -> None:
        self._context = None
        self._engine = None
        self._runtime = None
