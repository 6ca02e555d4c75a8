"""TensorRT plan files and their JSON sidecar (``<plan>.json``).

A serialized engine says nothing a loader can check before deserializing it (and a plan
built by another TensorRT version or for another GPU either fails to load or, worse,
fails later). Every plan rvm_ros writes, in the cache or with
``rvm-ros export --format engine``, gets a sidecar next to it: the model (id, config,
sizes), the ONNX file's sha256, the plan's own sha256, the TensorRT version, the GPU and
its compute capability, the precision, the batch profile, the I/O tensor names, the build
flags and the build check. `check_compatible` refuses a plan whose sidecar does not match
the machine, with a message saying how to rebuild. Pure: JSON and files, no TensorRT.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TypeGuard

from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import atomic_write, file_sha256

SIDECAR_FORMAT = 1
REBUILD_HINT = "rebuild it on this machine with `rvm-ros export --format engine`"


# A value of a flat JSON record (sidecar build flags, build check figures).
JsonScalar = str | int | float | bool | None


class PlanError(RvmRosError, ValueError):
    """A plan file or its sidecar is missing, unreadable or inconsistent."""

    cause = "invalid_plan"
    exit_code = 2


class PlanMismatch(RvmRosError, RuntimeError):
    """A plan was built for another TensorRT version, GPU or input size."""

    cause = "plan_mismatch"


@dataclass(frozen=True)
class PlanSidecar:
    """What a plan file was built from and for.

    Attributes:
        model_id: the model's id.
        model_config: the model's `RVMConfig` as JSON text (from the ONNX metadata).
        dim: feature width D.
        patch_size: patch size in pixels.
        height: frame height the engine takes.
        width: frame width.
        tokens: tokens per frame ``1 + h*w``.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        min_batch: lower bound of the batch profile (1).
        opt_batch: batch the profile is tuned for.
        max_batch: upper bound of the batch profile.
        inputs: input tensor names in engine order.
        outputs: output tensor names in engine order.
        onnx_sha256: sha256 of the ONNX file the engine was built from.
        plan_sha256: sha256 of the plan file's bytes.
        tensorrt_version: ``tensorrt.__version__`` of the build.
        gpu_name: the GPU it was built on.
        compute_capability: that GPU's compute capability, e.g. ``"8.7"``.
        build_flags: the build options that change the plan (see `BuildOptions`).
        build_check: `BuildCheck.as_dict` of the build, plus ``accepted``.
        build_seconds: how long the build took.
        cache_key: the engine cache key (empty for exported plans).
        format: sidecar format version.
    """

    model_id: str
    model_config: str
    dim: int
    patch_size: int
    height: int
    width: int
    tokens: int
    precision: str
    min_batch: int
    opt_batch: int
    max_batch: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    onnx_sha256: str
    plan_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    build_flags: dict[str, JsonScalar] = field(default_factory=dict)
    build_check: dict[str, JsonScalar] = field(default_factory=dict)
    build_seconds: float = 0.0
    cache_key: str = ""
    format: int = SIDECAR_FORMAT

    @property
    def check_passed(self) -> bool:
        """Whether the build check passed (an accepted failure is not a pass)."""
        return bool(self.build_check.get("passed", False))

    def to_json(self) -> str:
        """The sidecar's text (sorted keys, indented)."""
        data = asdict(self)
        data["inputs"], data["outputs"] = list(self.inputs), list(self.outputs)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "sidecar") -> PlanSidecar:
        """Parse a sidecar's text.

        Raises:
            PlanError: not JSON, an unknown format, or a missing / mistyped field.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(f"{source} is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise PlanError(f"{source} must hold a JSON object")
        if data.get("format") != SIDECAR_FORMAT:
            raise PlanError(
                f"{source} has sidecar format {data.get('format')!r}, expected {SIDECAR_FORMAT}"
            )
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names if n not in data and n not in _OPTIONAL)
        if missing:
            raise PlanError(f"{source} lacks {missing}")
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("inputs", "outputs"):
            value = kwargs[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PlanError(f"{source}: {key} must be a list of tensor names")
            kwargs[key] = tuple(value)
        for key in _INTS:
            if isinstance(kwargs[key], bool) or not isinstance(kwargs[key], int):
                raise PlanError(f"{source}: {key} must be an integer, got {kwargs[key]!r}")
        for key in _STRS:
            if not isinstance(kwargs[key], str):
                raise PlanError(f"{source}: {key} must be a string, got {kwargs[key]!r}")
        return cls(**kwargs)


_OPTIONAL = {"build_flags", "build_check", "build_seconds", "cache_key"}
_INTS = ("dim", "patch_size", "height", "width", "tokens", "min_batch", "opt_batch", "max_batch")
_STRS = (
    "model_id",
    "model_config",
    "precision",
    "onnx_sha256",
    "plan_sha256",
    "tensorrt_version",
    "gpu_name",
    "compute_capability",
)


def sidecar_path(plan: str | Path) -> Path:
    """The sidecar of a plan: ``<plan>.json`` (``model.plan`` -> ``model.plan.json``)."""
    plan = Path(plan)
    return plan.with_name(plan.name + ".json")


def is_plan_path(path: object) -> TypeGuard[str | Path]:
    """Whether a checkpoint argument names a TensorRT plan (``.plan`` or ``.engine``)."""
    return isinstance(path, (str, Path)) and str(path).endswith((".plan", ".engine"))


def write_plan(plan: Path, data: bytes, sidecar: PlanSidecar) -> None:
    """Write a plan and its sidecar, each atomically (temporary file, then rename).

    The sidecar is written last, so a plan without a sidecar (process killed between the
    two renames) is refused by `read_sidecar` rather than trusted.
    """
    atomic_write(plan, lambda tmp: tmp.write_bytes(data))
    atomic_write(sidecar_path(plan), lambda tmp: tmp.write_text(sidecar.to_json()))


def read_sidecar(plan: str | Path, *, verify_plan: bool = True) -> PlanSidecar:
    """Read the sidecar of a plan and (by default) check that it describes this plan.

    Raises:
        PlanError: plan or sidecar missing or unreadable, or the plan's sha256 differs
            from the one recorded (the plan was replaced without its sidecar).
    """
    plan = Path(plan)
    side = sidecar_path(plan)
    if not plan.is_file():
        raise PlanError(f"TensorRT plan not found: {plan}")
    try:
        text = side.read_text()
    except FileNotFoundError:
        raise PlanError(
            f"{plan} has no sidecar {side.name}; plans are loaded only with the sidecar "
            f"`rvm-ros export --format engine` writes ({REBUILD_HINT})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read {side}: {exc}") from None
    sidecar = PlanSidecar.from_json(text, source=str(side))
    if verify_plan:
        actual = file_sha256(plan)
        if actual != sidecar.plan_sha256:
            raise PlanError(
                f"{plan} does not match its sidecar {side.name} (sha256 {actual[:12]} != "
                f"{sidecar.plan_sha256[:12]}); {REBUILD_HINT}"
            )
    return sidecar


def check_size(
    sidecar: PlanSidecar, plan: str | Path, height: int | None, width: int | None
) -> None:
    """Refuse a plan built for another input size (``None``: any size is fine).

    Raises:
        PlanMismatch: the plan takes other frames than ``height`` x ``width``.
    """
    if height is None or width is None or (sidecar.height, sidecar.width) == (height, width):
        return
    raise PlanMismatch(
        f"{plan} takes {sidecar.height}x{sidecar.width} frames, not {height}x{width}; "
        "rebuild it for that size with `rvm-ros export --format engine`"
    )


def check_compatible(
    sidecar: PlanSidecar,
    plan: str | Path,
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    height: int | None = None,
    width: int | None = None,
) -> None:
    """Refuse a plan built for another TensorRT, GPU or input size.

    A plan built with ``version_compatible`` runs on the same or a later TensorRT of the
    same major version; one built with a ``hardware_compatibility`` level runs on other
    GPUs that level covers (``ampere_plus``: compute capability 8.0 or later;
    ``same_compute_capability``: equal compute capability). Otherwise the TensorRT version
    and the GPU must be the ones it was built with.

    Raises:
        PlanMismatch: with both values and how to rebuild.
    """
    flags = sidecar.build_flags
    built, here = sidecar.tensorrt_version, tensorrt_version
    if built != here:
        ok = bool(flags.get("version_compatible")) and _same_major_not_older(built, here)
        if not ok:
            raise PlanMismatch(
                f"{plan} was built with TensorRT {built}, this machine has TensorRT {here}; "
                f"{REBUILD_HINT}"
            )
    if sidecar.gpu_name != gpu_name or sidecar.compute_capability != compute_capability:
        level = str(flags.get("hardware_compatibility", "none"))
        ok = (level == "ampere_plus" and _cc(compute_capability) >= (8, 0)) or (
            level == "same_compute_capability" and sidecar.compute_capability == compute_capability
        )
        if not ok:
            raise PlanMismatch(
                f"{plan} was built for {sidecar.gpu_name} (compute capability "
                f"{sidecar.compute_capability}), this GPU is {gpu_name} ({compute_capability}); "
                f"{REBUILD_HINT}"
            )
    check_size(sidecar, plan, height, width)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _same_major_not_older(built: str, here: str) -> bool:
    b, h = _version(built), _version(here)
    return b[:1] == h[:1] and h >= b


def _cc(text: str) -> tuple[int, ...]:
    return _version(text)
