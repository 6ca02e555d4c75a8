"""The accelerator side of the TensorRT backend: buffers' device, the engine's stream, graphs.

`EngineDevice` is what the engine code needs from a device; `CudaDevice` is the real one
(a torch CUDA device with its own stream, graphs as torch CUDA graphs; no pycuda). The
tests supply a CPU stand-in. `cuda_errors` turns torch's CUDA failures into
`TensorRTError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

import torch

from rvm_ros.errors import RvmRosError
from rvm_ros.runtime.backends.tensorrt.build import TensorRTError
from rvm_ros.runtime.base import BackendUnavailable

__all__ = ["CudaDevice", "EngineDevice", "cuda_errors"]


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


@contextlib.contextmanager
def cuda_errors(doing: str) -> Iterator[None]:
    """Turn torch's CUDA errors (allocation, copies, kernels) into `TensorRTError`s."""
    try:
        yield
    except RvmRosError:
        raise
    except RuntimeError as exc:  # torch.OutOfMemoryError and "CUDA error: ..." included
        raise TensorRTError(f"CUDA error while {doing}: {exc}") from exc
