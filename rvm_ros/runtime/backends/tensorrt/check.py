"""The build check of a TensorRT engine: its outputs against ONNX Runtime's, as a gate.

After TensorRT builds an engine, the engine and ONNX Runtime (the float32 reference) run
the same fixed inputs (`check_inputs`) and `compare_outputs` decides whether the engine
may be used and cached. The bound depends on the precision the engine was built in:

- ``fp32``: the largest absolute difference of any output element is at most ``1e-3``
  (TF32 is switched off for fp32 builds, so this is a float32 engine).
- ``fp16`` / ``bf16``: the smallest per-token cosine similarity (over every token of every
  output, batch included) is at least ``0.999`` (fp16) or ``0.998`` (bf16). An absolute
  bound does not fit reduced precision: features reach magnitudes of several units, where
  one fp16 / bf16 rounding step alone is ``1e-3`` / ``1e-2``. For scale, measured here on
  the CPU with torch (whole model in reduced precision, random weights, one step from a
  random state): worst token cosine 0.99998 (fp16) and 0.99995 (bf16).

Any NaN or infinity in the engine's outputs fails the check at every precision.
Pure numpy: tested on arrays, no TensorRT needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from rvm_ros.errors import RvmRosError
from rvm_ros.runtime.backends.tensorrt.plan import JsonScalar

MAX_ABS_FP32 = 1e-3
MIN_COSINE: dict[str, float] = {"fp16": 0.999, "bf16": 0.998}
CHECK_SEED = 0


class EngineCheckFailed(RvmRosError, RuntimeError):
    """A TensorRT engine differs from ONNX Runtime by more than its precision allows."""

    cause = "engine_check_failed"


@dataclass(frozen=True)
class BuildCheck:
    """The result of comparing an engine's outputs with ONNX Runtime's.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``bf16``.
        max_abs_error: largest absolute difference over every output element.
        min_cosine: smallest per-token cosine similarity over every output.
        metric: what the bound applies to: ``max_abs_error`` or ``min_cosine``.
        bound: the bound on ``metric`` (upper for max abs error, lower for cosine).
        finite: whether every engine output was finite.
        passed: whether the engine is within the bound.
    """

    precision: str
    max_abs_error: float
    min_cosine: float
    metric: str
    bound: float
    finite: bool
    passed: bool

    def describe(self) -> str:
        """One line: the measured figures, the bound and the verdict."""
        if not self.finite:
            return "the engine's outputs hold NaN or infinity"
        value = getattr(self, self.metric)
        relation = "<=" if self.metric == "max_abs_error" else ">="
        verdict = "within" if self.passed else "outside"
        return (
            f"{self.precision} engine vs ONNX Runtime: max abs error {self.max_abs_error:.3g}, "
            f"min token cosine {self.min_cosine:.6f}; {self.metric} {value:.6g} is {verdict} "
            f"the bound ({self.metric} {relation} {self.bound:g})"
        )

    def as_dict(self) -> dict[str, JsonScalar]:
        """JSON-friendly fields (non-finite figures become ``None``)."""
        out: dict[str, JsonScalar] = asdict(self)
        for key, value in (("max_abs_error", self.max_abs_error), ("min_cosine", self.min_cosine)):
            if not math.isfinite(value):
                out[key] = None
        return out


def bound_for(precision: str) -> tuple[str, float]:
    """The metric and bound of a precision: ``("max_abs_error", 1e-3)`` for fp32, etc.

    Raises:
        ValueError: a precision TensorRT engines are not built in here.
    """
    if precision == "fp32":
        return "max_abs_error", MAX_ABS_FP32
    if precision in MIN_COSINE:
        return "min_cosine", MIN_COSINE[precision]
    raise ValueError(f"no build-check bound for precision {precision!r} (fp32, fp16, bf16)")


def _min_token_cosine(got: np.ndarray, want: np.ndarray) -> float:
    """Smallest cosine over the last axis; two zero vectors count as 1, one zero as 0."""
    a = got.astype(np.float64).reshape(-1, got.shape[-1])
    b = want.astype(np.float64).reshape(-1, want.shape[-1])
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    cos = np.ones(len(a))
    both = (na > 0) & (nb > 0)
    cos[both] = (a[both] * b[both]).sum(-1) / (na[both] * nb[both])
    cos[(na > 0) != (nb > 0)] = 0.0
    return float(cos.min(initial=1.0))


def compare_outputs(
    got: Sequence[np.ndarray], want: Sequence[np.ndarray], precision: str
) -> BuildCheck:
    """Compare an engine's outputs (``got``) with ONNX Runtime's (``want``).

    Args:
        got: the engine's outputs, e.g. ``[features, new_state]``, each ``[B, N, D]``.
        want: the reference outputs in the same order and shapes.
        precision: the precision the engine was built in (selects the bound).

    Returns:
        The `BuildCheck` (``passed`` says whether the engine may be used).

    Raises:
        ValueError: unknown precision, or outputs that do not pair up (count or shape).
    """
    metric, bound = bound_for(precision)
    if len(got) != len(want) or not got:
        raise ValueError(f"got {len(got)} engine outputs for {len(want)} reference outputs")
    worst_abs, worst_cos, finite = 0.0, 1.0, True
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if g.shape != w.shape:
            raise ValueError(f"output {i}: engine shape {g.shape} != reference shape {w.shape}")
        if not np.all(np.isfinite(g)):
            finite = False
            continue
        diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
        worst_abs = max(worst_abs, float(diff.max(initial=0.0)))
        worst_cos = min(worst_cos, _min_token_cosine(g, w))
    if not finite:
        worst_abs, worst_cos = math.inf, -math.inf
    value = worst_abs if metric == "max_abs_error" else worst_cos
    passed = finite and (value <= bound if metric == "max_abs_error" else value >= bound)
    return BuildCheck(
        precision=precision,
        max_abs_error=worst_abs,
        min_cosine=worst_cos,
        metric=metric,
        bound=bound,
        finite=finite,
        passed=bool(passed),
    )


def check_inputs(
    batch: int, height: int, width: int, tokens: int, dim: int, seed: int = CHECK_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed inputs of the build check: uint8 frames and a standard-normal state.

    Returns:
        ``frames uint8 [batch, height, width, 3]`` and ``state float32 [batch, tokens, dim]``,
        the same for the same arguments.
    """
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    state = rng.standard_normal((batch, tokens, dim)).astype(np.float32)
    return frames, state
