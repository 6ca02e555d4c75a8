"""`HeadSamples`: many planner-head samples as tensors (tokens shared by index)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rvm_ros.heads.fit import HeadBatch

__all__ = ["HeadSamples", "concat_samples"]


@dataclass(frozen=True, eq=False)
class HeadSamples:
    """Samples of one or more drives.

    Attributes:
        tokens: Source -> ``[T_all, Ncam, N, C]`` float16 tokens of every step.
        index: ``[S]`` int64 step of each sample in ``tokens``.
        window: ``[S, W]`` int64 steps of each sample's window (oldest first; repeated at
            the start of a drive).
        past: ``[S, P, 3]`` float32 past poses (:data:`PAST_S`).
        target: ``[S, K, 3]`` float32 future poses at the horizons.
        labels: ``[S]`` int64 segment (straight, turning, stopping).
        drive: ``[S]`` int64 drive number.
        horizons_s: The horizons.
    """

    tokens: dict[str, torch.Tensor]
    index: torch.Tensor
    window: torch.Tensor
    past: torch.Tensor
    target: torch.Tensor
    labels: torch.Tensor
    drive: torch.Tensor
    horizons_s: tuple[float, ...]

    def __len__(self) -> int:
        return int(self.index.numel())

    def batch(self, source: str | None, window: int = 1, past: bool = False) -> HeadBatch:
        """The :class:`HeadBatch` of one token source (None: past poses only)."""
        tokens = None
        if source is not None:
            all_tokens = self.tokens[source]
            # [S, W, Ncam, N, C] with a window, else [S, Ncam, N, C]
            pick = self.window[:, -window:] if window > 1 else self.index
            tokens = all_tokens[pick]
        return HeadBatch(tokens, self.past if past else None, None, self.target)

    def subset(self, keep: torch.Tensor) -> HeadSamples:
        """The samples where ``keep`` (bool ``[S]``) holds (tokens shared)."""
        return HeadSamples(
            self.tokens,
            self.index[keep],
            self.window[keep],
            self.past[keep],
            self.target[keep],
            self.labels[keep],
            self.drive[keep],
            self.horizons_s,
        )


def concat_samples(parts: Sequence[HeadSamples]) -> HeadSamples:
    """One :class:`HeadSamples` of several drives (token indices shifted)."""
    if not parts:
        raise ValueError("concat_samples: nothing to concatenate")
    tokens: dict[str, list[torch.Tensor]] = {k: [] for k in parts[0].tokens}
    index, window, shift = [], [], 0
    for p in parts:
        for k in tokens:
            tokens[k].append(p.tokens[k])
        index.append(p.index + shift)
        window.append(p.window + shift)
        shift += int(next(iter(p.tokens.values())).shape[0]) if p.tokens else 0
    return HeadSamples(
        {k: torch.cat(v) for k, v in tokens.items()},
        torch.cat(index),
        torch.cat(window),
        torch.cat([p.past for p in parts]),
        torch.cat([p.target for p in parts]),
        torch.cat([p.labels for p in parts]),
        torch.cat([p.drive for p in parts]),
        parts[0].horizons_s,
    )
