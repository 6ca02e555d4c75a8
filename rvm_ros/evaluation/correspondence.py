"""Patch correspondence under a known translation: nearest-neighbour top-1 of patch features
between a frame and a translated copy of it, for models and raw pixel patches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rvm_ros.model import RVM
from rvm_ros.training.data import DataError

__all__ = ["CorrespondenceReport", "correspondence_top1"]


@dataclass
class CorrespondenceReport:
    """Nearest-neighbour top-1 accuracy of patch matching under a known translation.

    Attributes:
        shift: Translation in pixels (magnitude; four directions are averaged).
        pairs: Frame pairs evaluated (per direction).
        accuracy: ``{name: top-1}`` for each feature kind evaluated.
    """

    shift: int
    pairs: int
    accuracy: dict[str, float]


def _patch_features_of(model: RVM | None, frames: torch.Tensor, patch: int) -> torch.Tensor:
    """Per-patch features ``[M, h*w, C]``: the model's first-step output, or raw pixels."""
    if model is None:
        from rvm_ros.training.objective import patchify

        p = patchify(frames, patch)
        return p - p.mean(-1, keepdim=True)
    state = model.init_state(frames.shape[0], frames.shape[1], frames.shape[2])
    feats, _ = model.step(frames, state)
    return feats[:, 1:].float()


@torch.no_grad()
def correspondence_top1(
    models: dict[str, RVM | None],
    frames: np.ndarray,
    height: int = 128,
    width: int = 128,
    shift: int = 19,
    pairs: int = 32,
) -> CorrespondenceReport:
    """Patch nearest-neighbour top-1 between a crop and the same frame's crop moved by ``shift``.

    For each pair the second crop is the first translated by ``shift`` pixels (right, left,
    down, up; averaged); a patch of the second crop is correct when its most similar patch
    (cosine) in the first crop is the one holding its centre. Patches whose centre leaves the
    first crop are not counted.

    Args:
        models: ``{name: model}``; ``None`` means raw pixel patches (mean removed).
        frames: uint8 ``[F, Hs, Ws, 3]`` with ``Hs >= height + shift``, ``Ws >= width + shift``.
        height: Crop height.
        width: Crop width.
        shift: Translation in pixels.
        pairs: Frames used (evenly spread).

    Returns:
        The report.
    """
    hs, ws = frames.shape[1:3]
    if hs < height + 2 * shift or ws < width + 2 * shift:
        raise DataError(f"frames {hs}x{ws} too small for {height}x{width} crops shifted by {shift}")
    patch = next((m.config.patch_size for m in models.values() if m is not None), 16)
    gh, gw = height // patch, width // patch
    pick = np.linspace(0, len(frames) - 1, min(pairs, len(frames))).round().astype(int)
    y0, x0 = (hs - height) // 2, (ws - width) // 2
    correct = dict.fromkeys(models, 0)
    counted = 0
    for dy, dx in ((0, shift), (0, -shift), (shift, 0), (-shift, 0)):
        a = np.stack([frames[i, y0 : y0 + height, x0 : x0 + width] for i in pick])
        b = np.stack(
            [frames[i, y0 + dy : y0 + dy + height, x0 + dx : x0 + dx + width] for i in pick]
        )
        # Patch (r, c) of b has its centre at a's pixel (centre + (dy, dx)).
        ys = (np.arange(gh) + 0.5) * patch + dy
        xs = (np.arange(gw) + 0.5) * patch + dx
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        inside = ((yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)).ravel()
        truth = (np.floor(yy / patch) * gw + np.floor(xx / patch)).ravel().astype(np.int64)
        counted += int(inside.sum()) * len(pick)
        ta = torch.from_numpy(a).float() / 255
        tb = torch.from_numpy(b).float() / 255
        for name, model in models.items():
            fa = F.normalize(_patch_features_of(model, ta, patch), dim=-1)  # [M, hw, C]
            fb = F.normalize(_patch_features_of(model, tb, patch), dim=-1)
            best = torch.einsum("mic,mjc->mij", fb, fa).argmax(-1).numpy()  # [M, hw]
            hit = (best == truth[None]) & inside[None]
            correct[name] += int(hit.sum())
    return CorrespondenceReport(
        shift=shift,
        pairs=len(pick),
        accuracy={k: v / max(1, counted) for k, v in correct.items()},
    )
