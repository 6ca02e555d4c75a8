"""PCA colouring of feature maps (3 principal directions -> RGB), with a reusable basis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class PcaBasis:
    """A 3-component PCA projection with a fixed colour range.

    Holds arrays, so instances compare by identity (``eq=False``).

    Attributes:
        mean: ``[C]`` feature mean.
        components: ``[3, C]`` unit principal directions (rows), sign-normalised.
        low: ``[3]`` projection value mapped to colour 0 (2nd percentile at fit time).
        high: ``[3]`` projection value mapped to colour 255 (98th percentile).
    """

    mean: np.ndarray
    components: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def channels(self) -> int:
        """Feature channels C the basis was fitted on."""
        return int(self.mean.shape[0])


def _top_directions(centred: np.ndarray, k: int, iterations: int = 30) -> np.ndarray:
    """The ``k`` leading principal directions of centred data ``[N, C]`` as rows ``[k', C]``.

    Orthogonal (subspace) iteration with a few extra vectors and a Rayleigh-Ritz step:
    only matrix products and tiny factorisations, much cheaper than a full SVD for the
    3 components needed here. Starts from a fixed pseudo-random basis, so it is
    deterministic. ``k' = min(k, N, C)``.
    """
    n, c = centred.shape
    k = min(k, n, c)
    m = min(k + 5, n, c)  # subspace size with oversampling
    start = np.random.default_rng(0).standard_normal((c, m))
    q, _ = np.linalg.qr(start)  # [C, m]
    for _ in range(iterations):
        q, _ = np.linalg.qr(centred.T @ (centred @ q))  # [C, m]
    projected = centred @ q  # [N, m]
    _, vectors = np.linalg.eigh(projected.T @ projected)  # eigenvalues ascending
    basis: np.ndarray = (q @ vectors[:, ::-1][:, :k]).T  # [k, C]
    return basis


def _fit_basis(flat: np.ndarray) -> PcaBasis:
    # flat: [N, C] float64
    n, c = flat.shape
    mean = flat.mean(axis=0)
    centred = flat - mean
    components = np.zeros((3, c), dtype=np.float64)
    if n > 1:
        top = _top_directions(centred, 3)
        components[: top.shape[0]] = top
    # Directions have no sign: make the largest-magnitude loading of each row positive.
    for i in range(3):
        j = int(np.argmax(np.abs(components[i])))
        if components[i, j] < 0:
            components[i] = -components[i]
    proj = centred @ components.T  # [N, 3]
    low = np.percentile(proj, 2, axis=0)
    high = np.percentile(proj, 98, axis=0)
    return PcaBasis(mean=mean, components=components, low=low, high=high)


def pca_colors(features: np.ndarray, basis: PcaBasis | None = None) -> tuple[np.ndarray, PcaBasis]:
    """Colour a feature grid by its first three principal components.

    Args:
        features: ``[h, w, C]`` (any float dtype; non-finite values count as 0).
        basis: Reuse this basis (and colour range) instead of fitting one, for colours
            that stay consistent across frames.

    Returns:
        ``(colors [h, w, 3] uint8 RGB, basis)``; the same input and basis always give the
        same colours.

    Raises:
        ValueError: Wrong shape, or a basis fitted on a different channel count.
    """
    feats = np.asarray(features)
    if feats.ndim != 3 or feats.shape[0] == 0 or feats.shape[1] == 0 or feats.shape[2] == 0:
        raise ValueError(f"pca_colors: expected non-empty features [h, w, C], got {feats.shape}")
    h, w, c = feats.shape
    flat = np.nan_to_num(feats.reshape(-1, c).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if basis is None:
        basis = _fit_basis(flat)
    elif basis.channels != c:
        raise ValueError(
            f"pca_colors: basis was fitted on {basis.channels} channels, features have {c}"
        )
    proj = (flat - basis.mean) @ basis.components.T  # [h*w, 3]
    span = basis.high - basis.low
    span = np.where(span > 1e-12, span, 1.0)
    unit = np.clip((proj - basis.low) / span, 0.0, 1.0)
    colors = np.round(unit * 255.0).astype(np.uint8).reshape(h, w, 3)
    return colors, basis
