"""Device buffers of the TensorRT encoder: frames, the two state buffers, features.

Per batch size two device state buffers ``[B, N, D]``; each step reads one and writes the
other (the output is bound to the next step's input), so a steady set of cameras costs
no state copy at all. When the set of cameras in a batch changes, the states are
gathered on the device (device-to-device copies), and states that would be overwritten
are first moved to their own device tensors (`Buffers.spill`). A camera's state is a
`StateRef`: a row of a state buffer, or its own tensor once spilled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from rvm_ros.runtime.backends.tensorrt.engine import Binding, LoadedEngine

__all__ = ["BufferPool", "Buffers", "StateRef"]


@dataclass(eq=False)
class StateRef:
    """A camera's state ``[N, D]``: a row of a state buffer, or its own device tensor."""

    tensor: torch.Tensor


@dataclass(eq=False)
class Buffers:
    """The device buffers of one batch size: frames, two states, features, graphs."""

    frames: torch.Tensor  # uint8 [B, H, W, 3]
    states: tuple[torch.Tensor, torch.Tensor]  # float32 [B, N, D] each
    features: torch.Tensor  # float32 [B, N, D]
    binding: Binding
    parity: int = 0  # states[parity] holds the latest output
    occupants: tuple[list[StateRef], list[StateRef]] = field(default_factory=lambda: ([], []))
    graphs: dict[int, Callable[[], None]] = field(default_factory=dict)

    def spill(self, which: int, keep: set[int]) -> None:
        """Give live states held in ``states[which]`` their own tensors (it is rewritten).

        Args:
            which: the state buffer about to be rewritten (0 or 1).
            keep: ``id`` of every `StateRef` still in use; the others are dropped.
        """
        for ref in self.occupants[which]:
            if id(ref) in keep:
                ref.tensor = ref.tensor.clone()
        self.occupants[which].clear()

    def stage(
        self,
        frames: np.ndarray,
        states: list[StateRef | None],
        live: set[int],
        zero: torch.Tensor,
    ) -> tuple[int, int]:
        """Put a step's inputs in place: the frames, and the states in the input buffer.

        Args:
            frames: uint8 ``[B, H, W, 3]`` on the host.
            states: per camera its state, or None for a fresh one (``zero``).
            live: ``id`` of every `StateRef` the encoder still holds.
            zero: the fresh state ``[N, D]`` on the device.

        Returns:
            ``(src, dst)``: the state buffer the step reads and the one it writes.
        """
        batch = frames.shape[0]
        src = self.parity
        dst = 1 - src
        resident = len(self.occupants[src]) == batch and all(
            s is o for s, o in zip(states, self.occupants[src], strict=True)
        )
        if resident:  # the same cameras in the same order: the last output is the input
            self.spill(dst, live - {id(s) for s in states})
        else:  # gather on the device; every live state in either buffer gets its own copy
            gathered = torch.stack([s.tensor if s is not None else zero for s in states])
            self.spill(src, live)
            self.spill(dst, live)
            self.states[src].copy_(gathered)
        self.frames.copy_(torch.from_numpy(frames))
        return src, dst

    def commit(self, dst: int, batch: int) -> list[StateRef]:
        """After a step wrote ``states[dst]``: it holds the latest output, one ref per row."""
        self.parity = dst
        new = [StateRef(self.states[dst][i]) for i in range(batch)]
        self.occupants[dst].extend(new)
        return new


class BufferPool:
    """The `Buffers` of every batch size used so far, made on first use.

    Args:
        loaded: the engine (its sidecar gives the frame size, tokens and width).
        device: where the buffers live.
        context_per_batch: one execution context per batch size (a captured CUDA graph
            never sees a reshape); otherwise one context shared by every batch size.
    """

    def __init__(self, loaded: LoadedEngine, device: torch.device, *, context_per_batch: bool):
        self.loaded = loaded
        self.device = device
        self.context_per_batch = context_per_batch
        self._buffers: dict[int, Buffers] = {}
        self._shared: Binding | None = None

    def get(self, batch: int) -> Buffers:
        """The buffers of ``batch`` cameras (allocated, zeroed, at the first call)."""
        bufs = self._buffers.get(batch)
        if bufs is not None:
            return bufs
        dev, side = self.device, self.loaded.sidecar
        if self.context_per_batch:
            binding = Binding(self.loaded.engine, self.loaded.where)
        else:
            if self._shared is None:
                self._shared = Binding(self.loaded.engine, self.loaded.where)
            binding = self._shared
        shape = (batch, side.tokens, side.dim)
        bufs = Buffers(
            frames=torch.zeros(batch, side.height, side.width, 3, dtype=torch.uint8, device=dev),
            states=(torch.zeros(shape, device=dev), torch.zeros(shape, device=dev)),
            features=torch.zeros(shape, device=dev),
            binding=binding,
        )
        self._buffers[batch] = bufs
        return bufs

    def clear(self) -> None:
        """Drop every buffer and execution context."""
        self._buffers.clear()
        self._shared = None
