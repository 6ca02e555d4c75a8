"""rvm_ros.rotations: quaternion <-> matrix conversions agree with each other and with SO(3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rvm_ros.rotations import matrix_to_quaternion, quaternion_to_matrix, quaternion_yaw


def _random_unit_quaternions(n: int) -> np.ndarray:
    q = np.random.default_rng(0).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@pytest.mark.parametrize("q", list(_random_unit_quaternions(16)))
def test_matrix_is_a_rotation_and_round_trips(q: np.ndarray) -> None:
    r = quaternion_to_matrix(q)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    back = np.array(matrix_to_quaternion(r))
    # q and -q are the same rotation
    assert min(np.abs(back - q).max(), np.abs(back + q).max()) < 1e-9


@pytest.mark.parametrize("yaw", [-3.0, -1.0, 0.0, 0.5, 2.9])
def test_yaw_of_a_rotation_about_z(yaw: float) -> None:
    q = (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
    assert quaternion_yaw(q) == pytest.approx(yaw)
    r = quaternion_to_matrix(q)
    np.testing.assert_allclose(r[:2, 0], [math.cos(yaw), math.sin(yaw)], atol=1e-12)


@pytest.mark.parametrize(
    "diag", [(1, -1, -1), (-1, 1, -1), (-1, -1, 1)], ids=["x-pi", "y-pi", "z-pi"]
)
def test_half_turns_use_the_stable_branches(diag: tuple[int, int, int]) -> None:
    r = np.diag(np.array(diag, dtype=float))
    np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(r)), r, atol=1e-12)
