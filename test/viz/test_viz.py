"""PCA colouring, track drawing and debug images (rvm_ros.viz.debug)."""

from __future__ import annotations

import numpy as np
import pytest

from rvm_ros.imaging.preprocess import fit_geometry
from rvm_ros.viz.debug import DebugRenderer, debug_image
from rvm_ros.viz.pca import pca_colors
from rvm_ros.viz.tracks import draw_tracks, track_color

RNG = np.random.default_rng(3)


def test_pca_colors_shape_and_determinism() -> None:
    feats = RNG.standard_normal((6, 7, 32)).astype(np.float32)
    colors, basis = pca_colors(feats)
    again, basis2 = pca_colors(feats.copy())
    assert colors.shape == (6, 7, 3) and colors.dtype == np.uint8
    np.testing.assert_array_equal(colors, again)
    np.testing.assert_array_equal(basis.components, basis2.components)
    assert basis.channels == 32 and basis.components.shape == (3, 32)
    # Rows are orthonormal.
    np.testing.assert_allclose(basis.components @ basis.components.T, np.eye(3), atol=1e-10)


def test_first_component_matches_covariance_eigenvector() -> None:
    # Strong variation along one direction v, weak noise elsewhere.
    v = RNG.standard_normal(16)
    v /= np.linalg.norm(v)
    t = np.linspace(-3, 3, 40)
    feats = (t[:, None] * v[None, :] * 5 + 0.01 * RNG.standard_normal((40, 16))).reshape(5, 8, 16)
    colors, basis = pca_colors(feats)
    flat = feats.reshape(-1, 16)
    _, vecs = np.linalg.eigh(np.cov(flat, rowvar=False))
    top = vecs[:, -1]  # independent: eigenvector of the largest covariance eigenvalue
    assert abs(float(basis.components[0] @ top)) == pytest.approx(1.0, abs=1e-6)
    # The sign rule: the largest-magnitude loading is positive.
    j = int(np.argmax(np.abs(basis.components[0])))
    assert basis.components[0, j] > 0
    # Red follows the position along v monotonically (up to clipping at the ends).
    red = colors.reshape(-1, 3)[:, 0].astype(int)
    sign = 1 if v[j] > 0 else -1
    ordered = red if sign > 0 else red[::-1]
    assert (np.diff(ordered) >= 0).all() and ordered[0] == 0 and ordered[-1] == 255


def test_three_components_match_svd() -> None:
    # Low rank (variances 100, 25, 4 along orthonormal directions) plus small noise.
    directions = np.linalg.qr(RNG.standard_normal((48, 3)))[0].T  # [3, 48]
    weights = RNG.standard_normal((300, 3)) * [10.0, 5.0, 2.0]
    flat = weights @ directions + 0.05 * RNG.standard_normal((300, 48))
    _, basis = pca_colors(flat.reshape(15, 20, 48))
    _, _, vt = np.linalg.svd(flat - flat.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(np.abs(np.sum(basis.components * vt[:3], axis=1)), 1.0, atol=1e-6)


def test_basis_reuse_gives_consistent_colours() -> None:
    a = RNG.standard_normal((4, 4, 8))
    _, basis = pca_colors(a)
    b = a[::-1]  # same features, rows flipped
    colors_b, same = pca_colors(b, basis)
    colors_a, _ = pca_colors(a, basis)
    assert same is basis
    np.testing.assert_array_equal(colors_b, colors_a[::-1])
    with pytest.raises(ValueError, match="basis was fitted on 8 channels, features have 9"):
        pca_colors(RNG.standard_normal((4, 4, 9)), basis)


def test_two_clusters_get_two_colours() -> None:
    feats = np.zeros((4, 6, 10))
    feats[:, :3] = RNG.standard_normal(10)
    feats[:, 3:] = RNG.standard_normal(10)
    colors, _ = pca_colors(feats)
    assert len({tuple(c) for c in colors[:, :3].reshape(-1, 3)}) == 1
    assert len({tuple(c) for c in colors[:, 3:].reshape(-1, 3)}) == 1
    assert tuple(colors[0, 0]) != tuple(colors[0, 5])


def test_degenerate_and_non_finite_features() -> None:
    colors, _ = pca_colors(np.ones((3, 3, 5), np.float16))
    assert len({tuple(c) for c in colors.reshape(-1, 3)}) == 1
    feats = RNG.standard_normal((3, 3, 2))
    feats[0, 0, 0] = np.nan
    feats[1, 1, 1] = np.inf
    colors, basis = pca_colors(feats)
    assert colors.shape == (3, 3, 3)
    assert np.isfinite(basis.components).all()
    colors, _ = pca_colors(np.ones((1, 1, 1)))
    assert colors.shape == (1, 1, 3)
    with pytest.raises(ValueError, match=r"expected non-empty features \[h, w, C\], got \(3, 3\)"):
        pca_colors(np.ones((3, 3)))


def test_draw_tracks() -> None:
    img = np.zeros((40, 60, 3), np.uint8)
    out = draw_tracks(
        img,
        xs=[10.5, 40.5, np.nan],
        ys=[20.5, 20.5, 5.0],
        visible=[True, False, True],
        ids=[3, 4, 5],
        labels=False,
    )
    assert (img == 0).all()  # input untouched
    assert out.shape == img.shape and out.dtype == np.uint8
    # Visible point 3: filled disc in its colour at pixel (row 20, col 10).
    assert tuple(out[20, 10]) == track_color(3)
    # Occluded point 4: hollow circle - centre untouched, ring drawn.
    assert tuple(out[20, 40]) == (0, 0, 0)
    assert tuple(out[20, 44]) != (0, 0, 0) or tuple(out[16, 40]) != (0, 0, 0)
    # The NaN point is skipped: nothing drawn near (5, 5) that is not from other points.
    assert (out[:10, :] == 0).all()
    with pytest.raises(ValueError, match="must have the same length, got 2, 1, 2, 2"):
        draw_tracks(img, [1, 2], [1], [True, True], [1, 2])
    with pytest.raises(ValueError, match=r"expected uint8 \[H, W, 3\]"):
        draw_tracks(img.astype(np.float32), [], [], [], [])


def test_track_colours_are_fixed_and_distinct() -> None:
    assert track_color(7) == track_color(7)
    assert len({track_color(i) for i in range(20)}) == 20


def test_debug_image_cells_land_where_geometry_says() -> None:
    # Stretch 64x96 image onto a 32x32 input with 16 px cells: a 2x2 grid, each cell
    # covering one image quadrant (32 rows x 48 columns).
    g = fit_geometry(64, 96, 32, 32, "stretch")
    feats = np.zeros((2, 2, 4))
    feats[0, 0, 0] = feats[0, 1, 1] = feats[1, 0, 2] = feats[1, 1, 3] = 1.0
    colors, _ = pca_colors(feats)
    img = np.full((64, 96, 3), 50, np.uint8)
    out = debug_image(img, feats, g, alpha=1.0)
    assert out.shape == (64, 96, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:32, :48], np.broadcast_to(colors[0, 0], (32, 48, 3)))
    np.testing.assert_array_equal(out[:32, 48:], np.broadcast_to(colors[0, 1], (32, 48, 3)))
    np.testing.assert_array_equal(out[32:, :48], np.broadcast_to(colors[1, 0], (32, 48, 3)))
    np.testing.assert_array_equal(out[32:, 48:], np.broadcast_to(colors[1, 1], (32, 48, 3)))
    np.testing.assert_array_equal(debug_image(img, feats, g, alpha=0.0), img)


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "center_crop"])
@pytest.mark.parametrize(
    ("image_hw", "model_hw"), [((48, 80), (32, 32)), ((8, 8), (32, 40)), ((61, 37), (48, 64))]
)
def test_debug_image_agrees_with_image_to_cell(
    mode: str, image_hw: tuple[int, int], model_hw: tuple[int, int]
) -> None:
    g = fit_geometry(*image_hw, *model_hw, mode)
    gh, gw = model_hw[0] // 16, model_hw[1] // 16
    feats = RNG.standard_normal((gh, gw, 5))
    colors, _ = pca_colors(feats)
    img = RNG.integers(0, 256, (*image_hw, 3), dtype=np.uint8)
    out = debug_image(img, feats, g, alpha=1.0, cell_size=16)
    ys, xs = np.mgrid[0 : image_hw[0], 0 : image_hw[1]] + 0.5
    row, col, valid = g.image_to_cell(xs, ys, 16)
    valid &= (row < gh) & (col < gw)
    np.testing.assert_array_equal(out[valid], colors[row[valid], col[valid]])
    np.testing.assert_array_equal(out[~valid], img[~valid])


def test_debug_image_center_crop_leaves_cropped_parts_plain() -> None:
    g = fit_geometry(32, 96, 32, 32, "center_crop")  # keeps image columns 32..64
    img = RNG.integers(0, 256, (32, 96, 3), dtype=np.uint8)
    feats = RNG.standard_normal((2, 2, 8))
    out = debug_image(img, feats, g, alpha=1.0)
    np.testing.assert_array_equal(out[:, :32], img[:, :32])
    np.testing.assert_array_equal(out[:, 64:], img[:, 64:])
    colors, _ = pca_colors(feats)
    np.testing.assert_array_equal(out[:16, 32:48], np.broadcast_to(colors[0, 0], (16, 16, 3)))
    np.testing.assert_array_equal(out[16:, 48:64], np.broadcast_to(colors[1, 1], (16, 16, 3)))


def test_debug_image_draws_tracks_and_checks_inputs() -> None:
    g = fit_geometry(64, 64, 32, 32, "letterbox")
    img = np.zeros((64, 64, 3), np.uint8)
    feats = RNG.standard_normal((2, 2, 4))
    out = debug_image(img, feats, g, tracks=([20.5], [30.5], [True], [9]), alpha=0.0)
    assert tuple(out[30, 20]) == track_color(9)
    with pytest.raises(ValueError, match=r"image must be uint8 \(64, 64, 3\) \(from geometry\)"):
        debug_image(np.zeros((10, 10, 3), np.uint8), feats, g)
    with pytest.raises(ValueError, match="alpha must be in"):
        debug_image(img, feats, g, alpha=2.0)


def test_debug_renderer_keeps_the_basis() -> None:
    g = fit_geometry(32, 32, 32, 32, "stretch")
    img = np.zeros((32, 32, 3), np.uint8)
    renderer = DebugRenderer(refit_every=0)
    a = RNG.standard_normal((2, 2, 4))
    first = renderer.render(img, a, g)
    basis = renderer.basis
    renderer.render(img, RNG.standard_normal((2, 2, 4)), g)
    assert renderer.basis is basis
    np.testing.assert_array_equal(renderer.render(img, a, g), first)
    refitting = DebugRenderer(refit_every=1)
    refitting.render(img, a, g)
    b1 = refitting.basis
    refitting.render(img, a, g)
    assert refitting.basis is not b1
    renderer.reset()
    assert renderer.basis is None
    with pytest.raises(ValueError, match="refit_every must be >= 0"):
        DebugRenderer(refit_every=-1)
