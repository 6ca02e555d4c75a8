"""The TensorRT build-check gate, as a pure function on arrays (no TensorRT needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rvm_ros.runtime.backends.tensorrt.check import (
    MAX_ABS_FP32,
    MIN_COSINE,
    bound_for,
    check_inputs,
    compare_outputs,
)


def _ref(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, 17, 32)).astype(np.float32)


def _with_cosine(ref: np.ndarray, cosine: float, token: int = 5) -> np.ndarray:
    """A copy of ``ref`` whose token ``token`` (batch 0) has exactly ``cosine`` to the original."""
    out = ref.copy()
    v = ref[0, token].astype(np.float64)
    ortho = np.random.default_rng(7).standard_normal(v.shape)
    ortho -= ortho @ v / (v @ v) * v
    ortho *= np.linalg.norm(v) / np.linalg.norm(ortho)
    angle = math.acos(cosine)
    out[0, token] = (math.cos(angle) * v + math.sin(angle) * ortho).astype(np.float32)
    return out


@pytest.mark.parametrize(
    ("error", "passed"),
    [(0.0, True), (5e-4, True), (MAX_ABS_FP32 * 0.99, True), (2e-3, False), (0.1, False)],
)
def test_fp32_bound_is_max_abs_error(error: float, passed: bool) -> None:
    ref = _ref()
    got = ref.copy()
    got[1, 3, 7] += np.float32(error)
    check = compare_outputs([got, got], [ref, ref], "fp32")
    assert check.metric == "max_abs_error" and check.bound == MAX_ABS_FP32
    assert check.max_abs_error == pytest.approx(error, rel=1e-3, abs=1e-7)
    assert check.passed is passed
    assert ("within" if passed else "outside") in check.describe()


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("margin", [-5e-4, 5e-4])
def test_reduced_precision_bound_is_worst_token_cosine(precision: str, margin: float) -> None:
    ref = _ref()
    cosine = MIN_COSINE[precision] + margin
    got = _with_cosine(ref, cosine)
    check = compare_outputs([got], [ref], precision)
    assert check.metric == "min_cosine"
    assert check.min_cosine == pytest.approx(cosine, abs=1e-5)
    assert check.passed is (margin > 0)


def test_a_large_absolute_error_passes_fp16_when_directions_agree() -> None:
    # fp16 rounding of features of magnitude ~4 is ~4e-3: an absolute bound would fail it
    ref = _ref() * 4
    got = ref.astype(np.float16).astype(np.float32)
    fp16 = compare_outputs([got], [ref], "fp16")
    assert fp16.max_abs_error > MAX_ABS_FP32 and fp16.passed
    assert not compare_outputs([got], [ref], "fp32").passed


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_output_fails_every_precision(precision: str, bad: float) -> None:
    ref = _ref()
    got = ref.copy()
    got[0, 0, 0] = bad
    check = compare_outputs([ref, got], [ref, ref], precision)
    assert not check.passed and not check.finite
    assert "NaN or infinity" in check.describe()
    assert check.as_dict()["max_abs_error"] is None  # JSON-friendly


def test_worst_output_decides() -> None:
    ref = _ref()
    bad = ref + np.float32(0.01)
    assert not compare_outputs([ref, bad], [ref, ref], "fp32").passed
    assert compare_outputs([ref, ref], [ref, ref], "fp32").passed


def test_zero_tokens_compare_by_direction() -> None:
    ref = _ref()
    ref[0, 2] = 0.0
    assert compare_outputs([ref.copy()], [ref], "fp16").min_cosine == pytest.approx(1.0)
    got = ref.copy()
    got[0, 2] = 1.0  # the reference token is zero, the engine's is not
    assert compare_outputs([got], [ref], "fp16").min_cosine == 0.0


@pytest.mark.parametrize(
    ("got", "want", "match"),
    [
        ([np.zeros((1, 2, 3))], [np.zeros((1, 2, 4))], "shape"),
        ([np.zeros((1, 2, 3))], [], "outputs"),
    ],
)
def test_outputs_must_pair_up(got: list[np.ndarray], want: list[np.ndarray], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compare_outputs(got, want, "fp32")


def test_unknown_precision_has_no_bound() -> None:
    with pytest.raises(ValueError, match="int8"):
        bound_for("int8")


def test_check_inputs_are_fixed() -> None:
    a, s = check_inputs(2, 32, 48, 7, 16)
    b, t = check_inputs(2, 32, 48, 7, 16)
    assert a.dtype == np.uint8 and a.shape == (2, 32, 48, 3)
    assert s.dtype == np.float32 and s.shape == (2, 7, 16)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(s, t)
