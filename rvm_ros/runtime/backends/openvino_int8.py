"""The NNCF recipe of the OpenVINO int8 step: quantisation preset and SmoothQuant.

`Int8Recipe` names the two NNCF settings that were measured to matter for the RVM step
(docs/BENCHMARKS.md, issue 26): the preset (``performance``: symmetric int8 activations;
``mixed``: asymmetric activations, whose zero points the int8 kernels compensate) and
the SmoothQuant alpha of the MatMuls (``-1`` switches SmoothQuant off). `DEFAULT_RECIPE`
is what the backend uses; `PREVIOUS_RECIPE` is the one it used before, kept so the two
can be compared (`rvm_ros.bench.openvino_profile --int8-recipe`).
"""

from __future__ import annotations

import logging
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # untyped package: the name documents the object, mypy sees Any
    import openvino as ov

PRESETS = ("performance", "mixed")


@dataclass(frozen=True)
class Int8Recipe:
    """NNCF settings of a static int8 quantisation (``ModelType.TRANSFORMER`` always).

    Attributes:
        preset: ``performance`` (symmetric activations) or ``mixed`` (asymmetric).
        smooth_quant: SmoothQuant alpha of the MatMuls in ``[0, 1]``, or ``-1`` for off.
    """

    preset: str = "performance"
    smooth_quant: float = -1.0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"int8 preset {self.preset!r} is not one of {', '.join(PRESETS)}")
        if self.smooth_quant != -1.0 and not 0.0 <= self.smooth_quant <= 1.0:
            raise ValueError(f"SmoothQuant alpha must be in [0, 1] or -1, not {self.smooth_quant}")

    @property
    def key(self) -> str:
        """``<preset>:<alpha>``, the form `parse_recipe` reads (and the cache key part)."""
        return f"{self.preset}:{self.smooth_quant:g}"


DEFAULT_RECIPE = Int8Recipe("performance", -1.0)
PREVIOUS_RECIPE = Int8Recipe("mixed", 0.95)


def parse_recipe(text: str) -> Int8Recipe:
    """An `Int8Recipe` from ``<preset>[:<alpha>]`` (e.g. ``mixed:0.95``, ``performance:-1``).

    Raises:
        ValueError: an unknown preset or an alpha outside ``[0, 1]`` and not ``-1``.
    """
    preset, _, alpha = text.partition(":")
    try:
        value = float(alpha) if alpha else DEFAULT_RECIPE.smooth_quant
    except ValueError as exc:
        raise ValueError(
            f"int8 recipe {text!r}: SmoothQuant alpha {alpha!r} is not a number"
        ) from exc
    return Int8Recipe(preset.strip().lower(), value)


def nncf_quantize(
    nncf: types.ModuleType,
    model: ov.Model,
    items: list[dict[str, np.ndarray]],
    recipe: Int8Recipe = DEFAULT_RECIPE,
) -> ov.Model:
    """NNCF's static int8 quantisation of ``model`` calibrated on ``items`` with ``recipe``
    (NNCF's own log quietened to errors)."""
    from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.ERROR)
    preset = {"performance": nncf.QuantizationPreset.PERFORMANCE}.get(
        recipe.preset, nncf.QuantizationPreset.MIXED
    )
    alphas = AdvancedSmoothQuantParameters(matmul=recipe.smooth_quant)
    try:
        return nncf.quantize(
            model,
            nncf.Dataset(items),
            model_type=nncf.ModelType.TRANSFORMER,
            preset=preset,
            subset_size=len(items),
            advanced_parameters=nncf.AdvancedQuantizationParameters(smooth_quant_alphas=alphas),
        )
    finally:
        nncf_log.setLevel(level)
