"""ONNX export of one recurrent RVM step, with checks.

The exported graph is ``(frames uint8 [B, H, W, 3], state [B, N, D]) ->
(features [B, N, D], new_state [B, N, D])`` with a dynamic batch axis ``batch``; the
frame size is fixed at export time, so the (jax-style resized) position table is a
constant of the graph. `verify_onnx` runs `onnx.checker`, compares ONNX Runtime with
torch on random input and summarises the graph with polygraphy.
"""

from __future__ import annotations

import io
import logging
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import torch

from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import atomic_write

if TYPE_CHECKING:
    from rvm_ros.model import RVM

from rvm_ros.runtime.backends.torch import converted
from rvm_ros.runtime.base import InputError, validate_size

log = logging.getLogger(__name__)

INPUT_NAMES: tuple[str, str] = ("frames", "state")
OUTPUT_NAMES: tuple[str, str] = ("features", "new_state")
DEFAULT_OPSET = 18


class ExportError(RvmRosError, RuntimeError):
    """The ONNX export or one of its checks failed."""

    cause = "export_failed"


class _StepModule(torch.nn.Module):
    """One recurrent step with the exported input/output order.

    Composes the model's ``encoder`` and ``core`` the way `RVM.step` does, without
    `RVM.step`'s Python-side shape checks (they turn the batch size into a Python int,
    which would fix the batch axis of the graph). `verify_onnx` checks the result
    against `RVM.step` itself.
    """

    def __init__(self, model: RVM) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = frames.to(torch.float32) / 255.0  # uint8 [B, H, W, 3] -> [0, 1]
        encoded = self.model.encoder(x)  # [B, N, D]
        new_state = self.model.core(encoded, state)  # [B, N, D]
        return self.model.features(new_state, x.shape[1], x.shape[2]), new_state


def export_onnx(
    model: RVM,
    path: str | Path,
    height: int,
    width: int,
    *,
    opset: int = DEFAULT_OPSET,
    dynamo: bool = True,
    max_batch: int = 64,
) -> Path:
    """Export one float32 recurrent step of ``model`` to an ONNX file.

    Args:
        model: an `RVM` (with ``step``, ``init_state`` and ``config``); exported on the
            CPU in float32 (a copy is not made: the model is moved to CPU/float32).
        path: output ``.onnx`` file (parent folders are created).
        height: frame height, a multiple of the patch size.
        width: frame width, a multiple of the patch size.
        opset: ONNX opset (at least 17).
        dynamo: use the torch.export-based exporter instead of the TorchScript one.
        max_batch: upper bound of the dynamic batch axis (dynamo exporter only).

    Returns:
        The path written.

    Raises:
        InputError: bad size or opset.
        ExportError: the exporter failed.
    """
    if opset < 17:
        raise InputError(f"opset must be at least 17, got {opset}")
    config = model.config
    validate_size(height, width, int(config.patch_size))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = converted(model, torch.device("cpu"), torch.float32)
    frames = torch.zeros(2, height, width, 3, dtype=torch.uint8)
    state = model.init_state(2, height, width)

    def write(tmp: Path) -> None:  # a unique sibling, swapped in when complete
        wrapper = _StepModule(model).eval()
        _torch_export(wrapper, (frames, state), tmp, opset, dynamo, max_batch, model.model_id)
        write_metadata(tmp, model, height, width)

    atomic_write(out, write)
    log.info("exported %s at %dx%d to %s", getattr(model, "model_id", "?"), height, width, out)
    return out


def _torch_export(
    wrapper: torch.nn.Module,
    inputs: tuple[torch.Tensor, torch.Tensor],
    tmp: Path,
    opset: int,
    dynamo: bool,
    max_batch: int,
    model_id: str,
) -> None:
    """``torch.onnx.export`` of the step with a dynamic batch axis into ``tmp``.

    Raises:
        ExportError: the exporter raised.
    """
    in_names, out_names = list(INPUT_NAMES), list(OUTPUT_NAMES)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dynamo:
                batch = torch.export.Dim("batch", min=1, max=max_batch)
                torch.onnx.export(
                    wrapper,
                    inputs,
                    str(tmp),
                    input_names=in_names,
                    output_names=out_names,
                    opset_version=opset,
                    dynamo=True,
                    external_data=False,
                    dynamic_shapes={"frames": {0: batch}, "state": {0: batch}},
                )
            else:
                axes = {name: {0: "batch"} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
                torch.onnx.export(
                    wrapper,
                    inputs,
                    str(tmp),
                    input_names=in_names,
                    output_names=out_names,
                    opset_version=opset,
                    dynamo=False,
                    dynamic_axes=axes,
                    do_constant_folding=True,
                )
    except Exception as exc:
        raise ExportError(f"ONNX export of {model_id} failed: {exc}") from exc


METADATA_PREFIX = "rvm_"


class OnnxMetadata(TypedDict):
    """The model facts `export_onnx` stores in an ONNX file (`read_metadata`)."""

    model_id: str
    dim: int
    patch_size: int
    height: int
    width: int


def write_metadata(path: Path, model: RVM, height: int, width: int) -> None:
    """Store the model facts a runtime needs in the ONNX file's ``metadata_props``.

    Args:
        path: the ONNX file (rewritten in place).
        model: the exported model (its id and config are stored).
        height: the exported frame height.
        width: the exported frame width.
    """
    import onnx

    proto = onnx.load(str(path))
    config = model.config
    facts = {
        "model_id": str(model.model_id),
        "dim": str(config.dim),
        "patch_size": str(config.patch_size),
        "height": str(height),
        "width": str(width),
        "config": config.to_json(),
    }
    del proto.metadata_props[:]
    for key, value in facts.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, value
    proto.producer_name = "rvm_ros"
    onnx.save(proto, str(path))


def read_metadata(path: str | Path) -> OnnxMetadata:
    """The model facts stored by `export_onnx`: ``model_id, dim, patch_size, height, width``.

    Raises:
        InputError: the file lacks them (not exported by rvm_ros).
    """
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    try:
        return {
            "model_id": props[METADATA_PREFIX + "model_id"],
            "dim": int(props[METADATA_PREFIX + "dim"]),
            "patch_size": int(props[METADATA_PREFIX + "patch_size"]),
            "height": int(props[METADATA_PREFIX + "height"]),
            "width": int(props[METADATA_PREFIX + "width"]),
        }
    except (KeyError, ValueError) as exc:
        raise InputError(
            f"{path} has no rvm_ros metadata ({exc}); export it with `rvm-ros export`"
        ) from None


@dataclass
class VerifyReport:
    """Result of `verify_onnx`.

    Attributes:
        path: the ONNX file checked.
        max_abs_error: largest |ORT - torch| over features and new state.
        batch_sizes: the batch sizes compared.
        opset: the model's default-domain opset.
        inputs: input name -> shape (symbolic dims as names).
        outputs: output name -> shape.
        nodes: number of graph nodes.
        summary: polygraphy's text summary of the model.
    """

    path: Path
    max_abs_error: float
    batch_sizes: list[int]
    opset: int
    inputs: dict[str, list[int | str]] = field(default_factory=dict)
    outputs: dict[str, list[int | str]] = field(default_factory=dict)
    nodes: int = 0
    summary: str = ""


def _shape(value_info) -> list[int | str]:  # type: ignore[no-untyped-def]
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


def polygraphy_summary(path: str | Path) -> str:
    """Polygraphy's ``inspect model`` text for an ONNX file (inputs, outputs, layers)."""
    from polygraphy import logger as pg_logger
    from polygraphy.backend.onnx import onnx_from_path
    from polygraphy.backend.onnx import util as onnx_util

    pg_logger.G_LOGGER.module_severity = pg_logger.G_LOGGER.ERROR
    model = onnx_from_path(str(path))
    buf = io.StringIO()
    with redirect_stdout(buf):
        text = onnx_util.str_from_onnx(model, show_layers=False, show_attrs=False)
    return str(text)


def verify_onnx(
    path: str | Path,
    model: RVM,
    height: int,
    width: int,
    *,
    batch_sizes: tuple[int, ...] = (1, 2),
    seed: int = 0,
    tolerance: float | None = 1e-4,
) -> VerifyReport:
    """Check an exported step: `onnx.checker`, ORT vs torch on random input, polygraphy.

    Random uint8 frames and a random state (standard normal) are fed to both ONNX Runtime
    (CPU) and the float32 torch model for each batch size.

    Args:
        path: the ONNX file.
        model: the torch model it was exported from.
        height: frame height the file was exported for.
        width: frame width.
        batch_sizes: batch sizes to compare (exercises the dynamic axis).
        seed: random seed of the inputs.
        tolerance: raise when the max abs error exceeds it (``None``: never).

    Returns:
        A `VerifyReport` with the max abs error.

    Raises:
        ExportError: the checker failed, the graph has the wrong interface or the
            error exceeds ``tolerance``.
    """
    import onnx
    import onnxruntime as ort

    path = Path(path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejected {path}: {exc}") from exc
    proto = onnx.load(str(path), load_external_data=False)
    names_in = tuple(i.name for i in proto.graph.input)
    names_out = tuple(o.name for o in proto.graph.output)
    if names_in != INPUT_NAMES or names_out != OUTPUT_NAMES:
        raise ExportError(
            f"{path}: expected inputs {INPUT_NAMES} and outputs {OUTPUT_NAMES}, "
            f"got {names_in} and {names_out}"
        )
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    report = VerifyReport(
        path=path,
        max_abs_error=0.0,
        batch_sizes=list(batch_sizes),
        opset=int(opset),
        inputs={i.name: _shape(i) for i in proto.graph.input},
        outputs={o.name: _shape(o) for o in proto.graph.output},
        nodes=len(proto.graph.node),
    )
    del proto
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = converted(model, torch.device("cpu"), torch.float32)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch in batch_sizes:
        frames = rng.integers(0, 256, size=(batch, height, width, 3), dtype=np.uint8)
        state = model.init_state(batch, height, width)
        state_np = rng.standard_normal(tuple(state.shape)).astype(np.float32)
        got = session.run(list(OUTPUT_NAMES), {"frames": frames, "state": state_np})
        with torch.inference_mode():
            want = model.step(torch.from_numpy(frames), torch.from_numpy(state_np))
        for g, w in zip(got, want, strict=True):
            worst = max(worst, float(np.max(np.abs(g - w.numpy()))))
    report.max_abs_error = worst
    report.summary = polygraphy_summary(path)
    if tolerance is not None and not worst <= tolerance:
        raise ExportError(
            f"{path}: ONNX Runtime differs from torch by {worst:.3g} (max abs), "
            f"above the tolerance {tolerance:g}"
        )
    return report
