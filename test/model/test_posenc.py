"""Sinusoid table and jax-style antialiased bicubic resize, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rvm_ros.model.posenc import grid_position_table, resize_matrix, sinusoid_table


def test_sinusoid_table_values() -> None:
    t = sinusoid_table(10, 8)
    assert t.shape == (10, 8)
    np.testing.assert_allclose(t[0, 0::2], 0.0)  # sin(0)
    np.testing.assert_allclose(t[0, 1::2], 1.0)  # cos(0)
    # position 3, channels 4 and 5 share the frequency 1 / 10000 ** (4 / 8)
    angle = 3 / 10000 ** (4 / 8)
    assert t[3, 4] == pytest.approx(math.sin(angle))
    assert t[3, 5] == pytest.approx(math.cos(angle))


def test_resize_identity() -> None:
    np.testing.assert_allclose(resize_matrix(16, 16), np.eye(16), atol=1e-12)


def test_resize_upsample_edge_weights_by_hand() -> None:
    # 4 -> 8: output 0 samples input coordinate -0.25; taps at distance 0.25 and 1.25
    # (Keys a=-0.5: k(0.25)=0.8671875, k(1.25)=-0.0703125), renormalised to sum 1.
    m = resize_matrix(4, 8)
    total = 0.8671875 - 0.0703125
    np.testing.assert_allclose(m[0], [0.8671875 / total, -0.0703125 / total, 0, 0], atol=1e-12)
    # output 3 samples 1.25: distances 1.25, 0.25, 0.75, 1.75 to inputs 0..3 (sum is 1)
    k025, k075, k125, k175 = 0.8671875, 0.2265625, -0.0703125, -0.0234375
    np.testing.assert_allclose(m[3], [k125, k025, k075, k175], atol=1e-12)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)


def test_resize_downsample_is_antialiased() -> None:
    # 16 -> 8: kernel widened by 2, so each output mixes up to 8 inputs (4 without antialias).
    m = resize_matrix(16, 8)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    assert (np.abs(m[4]) > 1e-12).sum() == 8
    # output 4 samples input coordinate 8.5; tap at input 9 is distance 0.5 / 2 = 0.25 in
    # kernel units, input 11 is distance 2.5 / 2 = 1.25.
    np.testing.assert_allclose(m[4, 9] / m[4, 11], 0.8671875 / -0.0703125, rtol=1e-12)


def test_grid_table_no_resize_is_sinusoid() -> None:
    t = grid_position_table(64, 16, 16, 16)
    np.testing.assert_allclose(t, sinusoid_table(256, 64).astype(np.float32))
    assert t.dtype == np.float32


def test_grid_table_resized_shape() -> None:
    t = grid_position_table(64, 16, 8, 12)
    assert t.shape == (96, 64)
    assert not t.flags.writeable


@given(st.integers(1, 48), st.integers(1, 48))
@settings(max_examples=80, deadline=None)
def test_resize_matrix_properties(n_in: int, n_out: int) -> None:
    m = resize_matrix(n_in, n_out)
    assert m.shape == (n_out, n_in)
    # weights renormalised: a constant grid stays constant
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-9)
    # support: 4 taps when upsampling, widened by the scale when downsampling
    width = 4.0 * max(n_in / n_out, 1.0)
    assert (np.abs(m) > 0).sum(axis=1).max() <= math.ceil(width) + 1
