"""The feature-map checks on feature arrays whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from rvm_ros.evaluation.feature_metrics import (
    CorrespondenceCounts,
    cell_correspondence,
    cell_labels,
    label_propagation,
    stability,
    variance_decomposition,
)
from rvm_ros.evaluation.feature_sources import pixel_source

GRID = (8, 8)
PATCH = 16


def _position_map(units: int, frames: int, channels: int = 16) -> list[np.ndarray]:
    """Every unit and frame gets the same per-cell features: position only."""
    cell = np.random.default_rng(1).standard_normal((GRID[0] * GRID[1], channels))
    return [np.broadcast_to(cell, (frames, *cell.shape)).copy() for _ in range(units)]


def test_position_only_map_is_all_position() -> None:
    shares = variance_decomposition(_position_map(4, 5))
    assert shares.position == pytest.approx(1.0)
    assert shares.content == pytest.approx(0.0, abs=1e-12)
    assert shares.time == pytest.approx(0.0, abs=1e-12)
    assert shares.position_corrected == pytest.approx(1.0)


@pytest.mark.parametrize("units", [5, 20])
def test_scene_constant_map_is_content_with_the_1_over_u_floor(units: int) -> None:
    """Features constant in time, independent per unit and cell: content, plus the 1/U floor
    of the per-cell mean of U unrelated scenes."""
    rng = np.random.default_rng(2)
    feats = [np.repeat(rng.standard_normal((1, 64, 32)), 6, axis=0) for _ in range(units)]
    shares = variance_decomposition(feats)
    assert shares.time == pytest.approx(0.0, abs=1e-12)
    assert shares.position == pytest.approx(1 / units, rel=0.25)
    assert shares.content == pytest.approx(1 - 1 / units, rel=0.1)
    assert shares.position_corrected == pytest.approx(0.0, abs=0.05)


def test_random_features_are_mostly_time_and_shares_sum_to_one() -> None:
    rng = np.random.default_rng(3)
    feats = [rng.standard_normal((t, 64, 8)) for t in (10, 12, 9, 11)]  # unequal lengths
    shares = variance_decomposition(feats)
    assert shares.position + shares.content + shares.time == pytest.approx(1.0)
    assert shares.time > 0.85
    assert shares.position < 0.05


def test_decomposition_needs_two_units() -> None:
    with pytest.raises(ValueError, match="two units"):
        variance_decomposition(_position_map(1, 3))


def _texture(height: int, width: int) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(4).random((height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


@pytest.mark.parametrize("shift", [(48, 0), (0, -64), (32, 48)])
def test_raw_pixels_match_exactly_under_a_pure_cell_translation(shift: tuple[int, int]) -> None:
    """A crop moved by whole cells: every raw-pixel patch finds itself (top-1 = 1)."""
    dx, dy = shift
    big = _texture(128 + 128, 128 + 128)
    y0, x0 = 64, 64
    ref = big[y0 : y0 + 128, x0 : x0 + 128]
    tgt = big[y0 + dy : y0 + dy + 128, x0 + dx : x0 + dx + 128]
    feats = pixel_source(PATCH).run(np.stack([ref, tgt])[None])[0]  # [2, N, P]
    # Target pixel (x, y) shows reference pixel (x + dx, y + dy).
    hom = np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1.0]])
    counts = cell_correspondence(feats[0], feats[1], hom, GRID, PATCH)
    moved = np.hypot(dx, dy) / PATCH
    assert counts.trials.sum() == (8 - abs(dy) // PATCH) * (8 - abs(dx) // PATCH)
    assert counts.top1_from(3.0 if moved >= 3 else 0.0) == 1.0
    assert counts.top1_from(0.0) == 1.0


def test_a_position_map_never_finds_moved_cells() -> None:
    cell = _position_map(1, 1)[0][0]
    hom = np.array([[1.0, 0, 48], [0, 1.0, 0], [0, 0, 1.0]])  # 3 cells
    counts = cell_correspondence(cell, cell, hom, GRID, PATCH)
    assert counts.trials.sum() == 5 * 8
    assert counts.top1_from(3.0) == 0.0


def test_counts_accumulate() -> None:
    a = CorrespondenceCounts.zeros()
    a.hits[3], a.trials[3] = 2, 4
    b = CorrespondenceCounts.zeros()
    b.hits[4], b.trials[4] = 1, 4
    a.add(b)
    assert a.top1_from(3.0) == pytest.approx(3 / 8)
    assert a.top1()[0] is None


def test_stability_of_frozen_and_of_unrelated_features() -> None:
    rng = np.random.default_rng(5)
    frozen = [np.repeat(rng.standard_normal((1, 64, 16)), 5, axis=0) for _ in range(6)]
    assert stability(frozen) == (pytest.approx(1.0), pytest.approx(1.0))
    churn = [rng.standard_normal((5, 64, 16)) for _ in range(6)]
    lag1, drift = stability(churn)
    # Every frame as different as another scene.
    assert abs(lag1) < 0.1 and abs(drift) < 0.1


def test_label_propagation_follows_features_not_position() -> None:
    rng = np.random.default_rng(6)
    labels = np.zeros(64, bool)
    labels[[3, 4, 11, 12]] = True
    ref = np.where(labels[:, None], 1.0, -1.0) + 0.1 * rng.standard_normal((64, 8))
    moved = np.roll(labels, 20)  # the object moved elsewhere in the target
    tgt = np.where(moved[:, None], 1.0, -1.0) + 0.1 * rng.standard_normal((64, 8))
    assert (label_propagation(ref, labels, tgt, k=3) == moved).all()


def test_cell_labels_need_more_than_half_a_cell() -> None:
    mask = np.zeros((32, 32), bool)
    mask[:16, :9] = True  # 9 of 16 columns of cell 0
    mask[16:, 16:24] = True  # exactly half of cell 3
    assert cell_labels(mask, 16).tolist() == [True, False, False, False]
