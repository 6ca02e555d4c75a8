"""Byte progress bars of checkpoint reading and downloading (tqdm, or nothing)."""

from __future__ import annotations

import contextlib
from typing import Protocol

__all__ = ["ByteBar", "byte_bar"]


class ByteBar(Protocol):
    """What the readers use of a progress bar: advance it by a number of bytes."""

    def update(self, n: int) -> object:
        """Advance the bar by ``n`` bytes."""


def byte_bar(
    show: bool, total: int | None, desc: str, initial: int = 0
) -> contextlib.AbstractContextManager[ByteBar | None]:
    """A tqdm byte bar as a context manager, or ``None`` in a null context when not ``show``.

    Args:
        show: Whether to show a bar at all.
        total: Bytes expected (None: unknown).
        desc: Text before the bar.
        initial: Bytes already done (a resumed download).
    """
    if not show:
        return contextlib.nullcontext(None)
    from tqdm import tqdm

    bar: contextlib.AbstractContextManager[ByteBar | None] = tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc
    )
    return bar
