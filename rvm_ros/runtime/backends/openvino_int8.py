"""The OpenVINO int8 step's NNCF recipe (preset, SmoothQuant) and its calibration data.

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
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rvm_ros.runtime.base import InputError

if TYPE_CHECKING:  # untyped package: the name documents the object, mypy sees Any
    import openvino as ov

PRESETS = ("performance", "mixed")
CALIBRATION_FRAMES = 32  # frames streamed for calibration (the last quarter held out)


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


@dataclass(frozen=True)
class Calibration:
    """Frames used to calibrate int8 and what the quantised model kept of float32.

    Attributes:
        source: ``synthetic:<seed>`` or the frames file.
        frames: frames streamed from the zero state (the first ``fit`` calibrate).
        fit: frames whose (frame, state) pairs were given to NNCF.
        cosine: mean per-token cosine of int8 vs float32 states on the held-out frames.
        cosine_min: the worst token's cosine there.
        seconds: time the quantisation took.
    """

    source: str
    frames: int
    fit: int
    cosine: float
    cosine_min: float
    seconds: float


def calibration_frames(
    source: str | Path | None, height: int, width: int, count: int = CALIBRATION_FRAMES
) -> tuple[np.ndarray, str]:
    """``uint8 [T, H, W, 3]`` calibration frames and their description.

    Args:
        source: a video file or ``.npy`` of frames (resized to ``height x width``), or
            ``None`` / ``synthetic[:<seed>]`` for the package's synthetic moving frames.
        height: model input height.
        width: model input width.
        count: frames to keep (fewer when the source is shorter).

    Raises:
        InputError: the frames cannot be read.
    """
    spec = str(source) if source is not None else "synthetic:0"
    if spec.startswith("synthetic"):
        from rvm_ros.imaging.synthetic import synthetic_frames

        seed = int(spec.split(":", 1)[1]) if ":" in spec else 0
        return synthetic_frames(count, 1, height, width, seed)[:, 0], f"synthetic:{seed}"
    from rvm_ros.errors import RvmRosError
    from rvm_ros.imaging.frames import load_frames

    try:
        frames = load_frames(spec, height, width, max_frames=count)[0]
    except RvmRosError as exc:
        raise InputError(f"cannot read int8 calibration frames: {exc}") from exc
    if len(frames) < 4:
        raise InputError(f"int8 calibration needs at least 4 frames, {spec} has {len(frames)}")
    return frames, str(Path(spec).resolve())


def stream_states(
    request: ov.InferRequest, frames: np.ndarray, tokens: int, dim: int
) -> list[np.ndarray]:
    """States seen while streaming ``frames`` from the zero state: state before each frame,
    then the final one (``len(frames) + 1`` arrays ``[1, N, D]``)."""
    state = np.zeros((1, tokens, dim), np.float32)
    seen = [state]
    for frame in frames:
        request.infer({"frames": frame[None], "state": state})
        state = np.array(request.get_tensor("new_state").data, dtype=np.float32, copy=True)
        seen.append(state)
    return seen


def token_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine per token of two ``[..., D]`` arrays (float64 sums; 0-safe)."""
    num = (a.astype(np.float64) * b).sum(-1)
    return np.asarray(
        num / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    )
