"""The TensorRT encoder: a loaded engine of the step behind `Encoder`, states on the GPU.

Each step stages its frames and states in the batch size's device buffers
(`buffers`), enqueues the engine on the device's stream between `begin` and
`end` of the `EngineDevice`, and downloads the features. Optionally (``cuda_graphs``,
off by default until measured) the step is captured in a CUDA graph per buffer parity
and batch size, and replayed from then on.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from rvm_ros.runtime.backends.tensorrt.buffers import BufferPool, Buffers, StateRef
from rvm_ros.runtime.backends.tensorrt.device import EngineDevice, cuda_errors
from rvm_ros.runtime.backends.tensorrt.engine import LoadedEngine
from rvm_ros.runtime.base import Encoder, EncoderInfo, InputError
from rvm_ros.runtime.onnx.export import INPUT_NAMES, OUTPUT_NAMES

log = logging.getLogger(__name__)

__all__ = ["TensorRTEncoder"]


class TensorRTEncoder(Encoder[StateRef]):
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
        self._graphs = bool(cuda_graphs)
        self._pool = BufferPool(loaded, device.torch_device, context_per_batch=self._graphs)
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

    @torch.inference_mode()
    def _run(
        self, frames: np.ndarray, states: list[StateRef | None]
    ) -> tuple[np.ndarray, list[StateRef]]:
        with cuda_errors(f"running {self.loaded.where}"):
            return self._step(frames, states)

    def _step(
        self, frames: np.ndarray, states: list[StateRef | None]
    ) -> tuple[np.ndarray, list[StateRef]]:
        batch = frames.shape[0]
        bufs = self._pool.get(batch)
        live = {id(r) for r in self._states.values()}
        src, dst = bufs.stage(frames, states, live, self._zero)
        self._launch(bufs, batch, src, dst)
        new = bufs.commit(dst, batch)
        return bufs.features.to("cpu", copy=True).numpy(), new

    def _launch(self, bufs: Buffers, batch: int, src: int, dst: int) -> None:
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
        self._pool.clear()
