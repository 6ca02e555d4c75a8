"""PyTorch backend: CPU or CUDA, float32 / bfloat16 / float16.

On CUDA the step is captured in a CUDA graph per batch size and replayed; the
per-camera states stay on the GPU (no host round trip), only the features are copied
to the host.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from rvm_ros.model import RVM

from rvm_ros.runtime.base import BackendUnavailable, Encoder, EncoderInfo, validate_size

log = logging.getLogger(__name__)

TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision name (``fp32``, ``bf16``, ``fp16``).

    Raises:
        BackendUnavailable: for precisions the torch backend does not run (``int8``).
    """
    try:
        return TORCH_DTYPES[precision]
    except KeyError:
        raise BackendUnavailable(
            f"precision {precision!r} is not supported by the torch backend "
            f"(choose one of {sorted(TORCH_DTYPES)}; int8 runs on onnxruntime)"
        ) from None


def check_device_precision(device: torch.device, precision: str) -> None:
    """Refuse combinations that cannot run (CUDA absent, fp16 on CPU).

    Raises:
        BackendUnavailable: naming the device and precision.
    """
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"device {device} requested but torch sees no CUDA device")
    if device.type == "cpu" and precision == "fp16":
        raise BackendUnavailable(
            "fp16 is not supported on the CPU (slow or missing kernels); use bf16 or fp32"
        )


def converted(model: RVM, device: torch.device, dtype: torch.dtype) -> RVM:
    """``model`` on ``device`` in ``dtype``, in eval mode; a copy when a conversion is needed.

    The caller's model is never converted in place.
    """
    ref = next(model.parameters())
    if ref.device != device or ref.dtype != dtype:
        model = copy.deepcopy(model).to(device=device, dtype=dtype)
    return model.eval()


@dataclass
class _Graph:
    """A captured CUDA graph for one batch size and its static buffers."""

    graph: torch.cuda.CUDAGraph
    frames: torch.Tensor  # uint8 [B, H, W, 3]
    state: torch.Tensor  # [B, N, D]
    features: torch.Tensor  # [B, N, D]
    new_state: torch.Tensor  # [B, N, D] (the features plus the feature centre, if any)


class TorchEncoder(Encoder[torch.Tensor]):
    """Runs `RVM.step` with torch; states are tensors ``[N, D]`` on the model's device.

    Args:
        model: an `rvm_ros.model.RVM` (any module with ``step``, ``config``,
            ``model_id``); it is moved to ``device`` and ``precision``.
        precision: ``fp32``, ``bf16`` or ``fp16`` (CUDA only).
        device: torch device string; ``None`` picks ``cuda`` when available else ``cpu``.
        height: frame height (multiple of the patch size).
        width: frame width (multiple of the patch size).
        max_batch: largest batch `step` accepts.
        cuda_graphs: capture the step in a CUDA graph per batch size (CUDA only).
        reason: recorded in `EncoderInfo.reason`.
    """

    def __init__(
        self,
        model: RVM,
        precision: str = "fp32",
        device: str | None = None,
        height: int = 256,
        width: int = 256,
        max_batch: int = 8,
        cuda_graphs: bool = True,
        reason: str = "requested",
    ) -> None:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch_dtype(precision)
        check_device_precision(dev, precision)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        config = model.config
        validate_size(height, width, int(config.patch_size))
        self.model = converted(model, dev, dtype)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = dev
        self.dtype = dtype
        grid_h, grid_w = height // config.patch_size, width // config.patch_size
        self._tokens = 1 + grid_h * grid_w
        self._dim = int(config.dim)
        self._use_graphs = bool(cuda_graphs) and dev.type == "cuda"
        self._graphs: dict[int, _Graph] = {}
        info = EncoderInfo(
            backend="torch",
            precision=precision,
            device=str(dev),
            model_id=str(model.model_id),
            dim=self._dim,
            patch_size=int(config.patch_size),
            height=int(height),
            width=int(width),
            reason=reason,
        )
        super().__init__(info, max_batch)

    # ------------------------------------------------------------------ step
    def _zero(self) -> torch.Tensor:
        return torch.zeros(self._tokens, self._dim, device=self.device, dtype=self.dtype)

    def _gather(
        self, states: list[torch.Tensor | None], out: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = [s if s is not None else self._zero() for s in states]
        if out is None:
            return torch.stack(parts)  # [B, N, D]
        torch.stack(parts, out=out)
        return out

    @torch.inference_mode()
    def _run(
        self, frames: np.ndarray, states: list[torch.Tensor | None]
    ) -> tuple[np.ndarray, list[torch.Tensor]]:
        batch = frames.shape[0]
        host = torch.from_numpy(frames)  # uint8 [B, H, W, 3]
        if self._use_graphs:
            g = self._graphs.get(batch) or self._capture(batch)
            g.frames.copy_(host, non_blocking=False)
            self._gather(states, out=g.state)
            g.graph.replay()
            out, new_state = g.features, g.new_state
        else:
            x = host.to(self.device)
            out, new_state = self.model.step(x, self._gather(states))  # [B, N, D] each
        # The features are the new state minus the model's feature centre, if it has one.
        # Clone per camera so a later step (or graph replay, which overwrites its static
        # output) cannot alias them.
        new_states = [t.clone() for t in new_state.unbind(0)]
        features = out.to(dtype=torch.float32).cpu().numpy()
        return features, new_states

    def _capture(self, batch: int) -> _Graph:
        """Capture the step for ``batch`` frames in a CUDA graph (warm-up first)."""
        info = self.info
        frames = torch.zeros(
            batch, info.height, info.width, 3, dtype=torch.uint8, device=self.device
        )
        state = torch.zeros(batch, self._tokens, self._dim, dtype=self.dtype, device=self.device)
        # torch.cuda.Stream's constructor is unannotated in torch's own hints.
        stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up: cuBLAS handles, autotuning, allocator pools
                self.model.step(frames, state)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            features, new_state = self.model.step(frames, state)
        log.info("captured a CUDA graph for batch %d at %dx%d", batch, info.height, info.width)
        g = _Graph(graph=graph, frames=frames, state=state, features=features, new_state=new_state)
        self._graphs[batch] = g
        return g

    def _release(self) -> None:
        self._graphs.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
