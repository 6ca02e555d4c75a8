"""Where the checked feature maps come from: a model run like the node runs it, or pixels."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from rvm_ros.model import RVM
from rvm_ros.training.config import DataSection
from rvm_ros.training.objective import patchify

__all__ = ["FeatureSource", "pixel_source", "random_like"]


@dataclass(eq=False)
class FeatureSource:
    """A named producer of per-cell features for frame sequences.

    Attributes:
        name: Name in the report (``model``, ``random weights``, ``raw pixels``, ...).
        model: The model (eval mode), run recurrently from the zero state over each
            sequence, as the node runs it; None: raw pixel patches, each minus its mean.
        patch: Cell side in pixels.
        spec: Where it came from (checkpoint path or a description), for the report.
    """

    name: str
    model: RVM | None
    patch: int
    spec: str = ""

    @torch.no_grad()
    def run(self, frames: np.ndarray) -> np.ndarray:
        """Features of every frame of a batch of sequences.

        Args:
            frames: uint8 ``[B, T, H, W, 3]`` RGB.

        Returns:
            float32 ``[B, T, N, C]`` (N = cells, row-major; the CLS token is dropped).
        """
        b, t, height, width, _ = frames.shape
        if self.model is None:
            x = torch.from_numpy(frames.reshape(b * t, height, width, 3)).float() / 255
            p = patchify(x, self.patch)  # [B*T, N, P]
            p = p - p.mean(-1, keepdim=True)
            return p.reshape(b, t, *p.shape[1:]).numpy().astype(np.float32)
        state = self.model.init_state(b, height, width)
        out = []
        for i in range(t):
            feats, state = self.model.step(torch.from_numpy(frames[:, i]), state)  # [B, 1+N, D]
            out.append(feats[:, 1:].float().numpy())
        return np.stack(out, axis=1)


def pixel_source(patch: int) -> FeatureSource:
    """The raw-pixel baseline: each cell's pixels (mean removed, so cosine matching is
    invariant to the patch's brightness: the usual normalised patch matching)."""
    return FeatureSource("raw pixels", None, patch, "pixels")


def random_like(model: RVM, seed: int = 0, center_data: DataSection | None = None) -> FeatureSource:
    """The same architecture with the project's deterministic random weights (``random:``).

    Args:
        model: The model whose architecture is copied.
        seed: Seed of the random weights.
        center_data: When ``model`` has a feature centre, the baseline gets its own, fitted
            on these training sequences (the same treatment, so the comparison is fair);
            None: no centre.
    """
    from rvm_ros.checkpoint.random import randomize_

    config = replace(model.config, center_grid=None)
    twin = randomize_(RVM(config, with_decoder=False, model_id="random"), seed).eval()
    spec = f"random seed {seed}"
    if model.feature_center is not None and center_data is not None:
        from rvm_ros.training.center import CenterFit, fit_center, sequence_data, with_center
        from rvm_ros.training.data import ClipDataset

        fit = CenterFit(clips=32)
        dataset = ClipDataset(sequence_data(center_data, fit), fit.seed, config.patch_size)
        grid = config.grid(center_data.height, center_data.width)
        twin = with_center(twin, fit_center(twin, dataset, fit), grid)
        spec += f", feature centre fitted on {fit.clips} training sequences"
        return FeatureSource("random weights, centred", twin, config.patch_size, spec)
    return FeatureSource("random weights", twin, config.patch_size, spec)
