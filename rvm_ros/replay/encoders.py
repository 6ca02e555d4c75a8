"""The encoder of a replay worker, kept from bag to bag so the model loads once per worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # rvm_ros.runtime imports torch: only where an encoder is made
    from rvm_ros.runtime import StepRunner

__all__ = ["Encoder", "EncoderCache"]

# Any: each backend keeps its own opaque per-camera state type; replay never looks inside.
Encoder: TypeAlias = "StepRunner[Any]"


class EncoderCache:
    """Holds at most one encoder, keyed by the arguments it was created with.

    A worker that replays bag after bag (a local process or a Ray actor) asks for its
    encoder per bag: the same arguments give the same encoder back, its camera states
    cleared, so each bag starts from the zero state exactly like a fresh encoder; other
    arguments close the old one first. ``keep=False`` closes the encoder after each bag
    (one-off replays).

    Args:
        keep: Keep the encoder between bags.
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self._key: tuple[object, ...] | None = None
        self._encoder: Encoder | None = None
        self.loads = 0

    def get(self, factory: Callable[..., Encoder], *args: object, **kwargs: object) -> Encoder:
        """The encoder ``factory(*args, **kwargs)`` would make, reused when cached."""
        key = (args, tuple(sorted(kwargs.items())))
        if self._encoder is not None and key == self._key:
            self._encoder.reset()  # every camera starts from the zero state
            return self._encoder
        self.close()
        encoder = factory(*args, **kwargs)
        self.loads += 1
        if self.keep:
            self._key, self._encoder = key, encoder
        return encoder

    def release(self, encoder: Encoder) -> None:
        """The bag is done with ``encoder``: clear its states, or close it (``keep=False``)."""
        if self.keep and encoder is self._encoder:
            encoder.reset()
        else:
            encoder.close()

    def close(self) -> None:
        """Close the cached encoder (if any)."""
        if self._encoder is not None:
            self._encoder.close()
        self._key, self._encoder = None, None
