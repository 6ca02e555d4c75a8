"""224x224 against 256x256 cameras: the features' change on the same frames, and the
planning head's metrics at each size (``rvm-ros e2e-table --sizes 224,256``).

Feature change: the same frames are fed at both sizes; the larger grid (16x16 at 256) is
resampled bilinearly onto the smaller one (14x14 at 224; cells cover the same image
regions), and the per-cell cosine similarity is averaged, for the node's recurrent tokens
and the per-frame encoder tokens. For scale, the same measure between consecutive frames
at one size (what one frame of motion changes) and between frames of different drives
(unrelated content).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rvm_ros.datasets.drive_tokens import extract_drive_tokens

__all__ = ["feature_change"]


def _to_grid(tokens: np.ndarray, side: int, out_side: int) -> torch.Tensor:
    """``[T, Ncam, side*side, C]`` -> ``[T*Ncam, C, out, out]`` (bilinear onto ``out``)."""
    t = torch.from_numpy(tokens.astype(np.float32))
    t = t.reshape(-1, side, side, t.shape[-1]).permute(0, 3, 1, 2)
    if side == out_side:
        return t
    return torch.nn.functional.interpolate(
        t, (out_side, out_side), mode="bilinear", align_corners=False, antialias=True
    )


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=1).mean())


def feature_change(
    bags: Sequence[Path],
    checkpoint: str,
    sizes: tuple[int, int] = (224, 256),
    max_steps: int = 60,
    threads: int = 1,
    cameras: Sequence[str] | None = None,
    # Any: JSON-ready result records (settings, rows, nested metrics) read back by key.
) -> dict[str, Any]:
    """Cosine similarity of features at ``sizes[0]`` and ``sizes[1]`` on the same frames."""
    from rvm_ros.checkpoint.load import load_model

    torch.set_num_threads(threads)
    model = load_model(checkpoint).eval()
    small, large = sorted(sizes)
    per_size: dict[int, list[dict[str, np.ndarray]]] = {small: [], large: []}
    for size in (small, large):
        for bag in bags:
            d = extract_drive_tokens(
                bag, model, (size, size), cameras=cameras, pool=1, max_steps=max_steps
            )
            per_size[size].append(d.tokens)
    gs, gl = small // 16, large // 16
    # Any: JSON-ready result records (settings, rows, nested metrics) read back by key.
    out: dict[str, Any] = {
        "checkpoint": checkpoint,
        "model_id": model.model_id,
        "sizes": [small, large],
        "bags": [str(b) for b in bags],
        "steps_per_bag": max_steps,
    }
    for source in ("node", "frame"):
        a = torch.cat([_to_grid(t[source], gs, gs) for t in per_size[small]])
        b = torch.cat([_to_grid(t[source], gl, gs) for t in per_size[large]])
        row = {f"cos_{small}_vs_{large}": _cos(a, b)}
        rel = (a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)
        row["relative_l2"] = float(rel.mean())
        # References at the large size: the next frame, and another drive's frame.
        ref = [_to_grid(t[source], gl, gs) for t in per_size[large]]
        ncam = per_size[large][0][source].shape[1]
        nxt = [_cos(r[:-ncam], r[ncam:]) for r in ref if r.shape[0] > ncam]
        row["cos_next_frame"] = float(np.mean(nxt)) if nxt else float("nan")
        if len(ref) > 1:
            n = min(r.shape[0] for r in ref)
            row["cos_other_drive"] = _cos(ref[0][:n], ref[1][:n])
        out[source] = row
    return out
