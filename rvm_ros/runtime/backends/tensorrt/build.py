"""Building a TensorRT engine of the exported step: builder options, timing cache, errors.

`build_plan` parses the ONNX step, builds one optimisation profile over the batch
(camera) axis ``1 .. max_batch`` in the requested precision, and returns the serialized
plan. Every TensorRT call that reports failure through its return value is checked, and
each failure raises `TensorRTError` naming the ONNX file and the engine cache key.

The timing cache (layer timings measured during a build) is read before the build and
written back after it, so a later build of a changed ONNX file (new weights, another
size) skips the timing of layers it has seen: TensorRT's own mechanism for the
"every rebuild takes minutes" problem. It is keyed by TensorRT version and compute
capability (`rvm_ros.runtime.cache.timing_cache_path`); a cache TensorRT rejects is
logged and replaced, never fatal.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import atomic_write
from rvm_ros.runtime.backends.tensorrt.plan import JsonScalar
from rvm_ros.runtime.onnx.export import INPUT_NAMES

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

TRT_PRECISIONS = ("fp32", "fp16", "bf16")
HARDWARE_LEVELS = ("none", "ampere_plus", "same_compute_capability")


class TensorRTError(RvmRosError, RuntimeError):
    """A TensorRT or CUDA call failed; the message names the engine (path, key)."""

    cause = "tensorrt_failed"


@dataclass(frozen=True)
class BuildOptions:
    """Builder options of an engine (all of them part of the cache key).

    Attributes:
        precision: ``fp32`` (TF32 off), ``fp16`` or ``bf16`` (TensorRT may keep layers in
            float32 where that is faster or needed; I/O stays float32 / uint8).
        max_batch: upper bound of the batch profile (lower bound 1).
        opt_batch: batch size the profile is tuned for (default ``max_batch``).
        workspace_gb: builder workspace limit.
        version_compatible: build a plan later TensorRT versions (same major) can run
            (TensorRT's ``VERSION_COMPATIBLE`` flag; lean-runtime operators only, can be
            slower; the runtime must allow host code).
        hardware_compatibility: ``none``, ``ampere_plus`` (any GPU of compute capability
            8.0 or later) or ``same_compute_capability``; can be slower.
    """

    precision: str = "fp16"
    max_batch: int = 8
    opt_batch: int | None = None
    workspace_gb: float = 4.0
    version_compatible: bool = False
    hardware_compatibility: str = "none"

    def __post_init__(self) -> None:
        if self.precision not in TRT_PRECISIONS:
            raise ValueError(
                f"precision {self.precision!r} is not supported by the tensorrt backend "
                f"(choose one of {list(TRT_PRECISIONS)})"
            )
        if self.max_batch < 1 or not 1 <= self.opt <= self.max_batch:
            raise ValueError(f"need 1 <= opt_batch ({self.opt}) <= max_batch ({self.max_batch})")
        if not self.workspace_gb > 0:
            raise ValueError(f"workspace_gb must be positive, got {self.workspace_gb}")
        if self.hardware_compatibility not in HARDWARE_LEVELS:
            raise ValueError(
                f"hardware_compatibility must be one of {list(HARDWARE_LEVELS)}, "
                f"got {self.hardware_compatibility!r}"
            )

    @property
    def opt(self) -> int:
        """The batch size the profile is tuned for."""
        return self.max_batch if self.opt_batch is None else self.opt_batch

    def flags(self) -> dict[str, JsonScalar]:
        """The options besides precision and shapes that change the plan (cache key, sidecar)."""
        return {
            "workspace_gb": float(self.workspace_gb),
            "version_compatible": bool(self.version_compatible),
            "hardware_compatibility": self.hardware_compatibility,
            "tf32": False,
        }


def tensorrt_major(version: str) -> int:
    """The major version of a ``tensorrt.__version__`` string (0 when unreadable)."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def build_plan(
    onnx_path: str | Path,
    options: BuildOptions,
    *,
    height: int,
    width: int,
    tokens: int,
    dim: int,
    timing_cache: Path | None,
    where: str,
) -> tuple[bytes, float]:
    """Build a serialized TensorRT plan of the exported step.

    Args:
        onnx_path: the float32 ONNX step (`export_onnx`).
        options: precision, batch profile and compatibility flags.
        height: frame height of the ONNX file.
        width: frame width.
        tokens: tokens per frame ``1 + h*w``.
        dim: feature width D.
        timing_cache: the timing cache file to read and update (``None``: no cache).
        where: names the engine in error messages (plan path and cache key).

    Returns:
        The plan bytes and the build time in seconds.

    Raises:
        TensorRTError: parsing, a builder setting or the build failed.
    """
    import tensorrt as trt

    started = time.monotonic()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, parser = _parse_network(builder, logger, onnx_path, where)
    config = _builder_config(builder, options)
    _add_batch_profile(builder, config, options, (height, width, tokens, dim), where)
    cache = _load_timing_cache(config, timing_cache)
    plan = builder.build_serialized_network(network, config)
    del parser  # it holds the parsed weights until the build is done
    if plan is None or plan.nbytes == 0:
        raise TensorRTError(
            f"TensorRT failed to build an engine from {onnx_path} ({where}); its log above says why"
        )
    if timing_cache is not None and cache is not None:
        updated = config.get_timing_cache()  # the cache attached above, now with new timings
        data = bytes((updated or cache).serialize())
        atomic_write(timing_cache, lambda tmp: tmp.write_bytes(data))
        log.info("timing cache %s updated (%d bytes)", timing_cache, len(data))
    return bytes(plan), time.monotonic() - started


def _parse_network(
    builder: trt.Builder, logger: trt.ILogger, onnx_path: str | Path, where: str
) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    """The network parsed from ``onnx_path`` and its parser (keep it until the build).

    Raises:
        TensorRTError: the parser reported errors.
    """
    import tensorrt as trt

    flags = 0
    if tensorrt_major(trt.__version__) < 10:  # TensorRT 8.x (JetPack 6.0) needs it said
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTError(f"TensorRT could not parse {onnx_path} ({where}): {errors}")
    return network, parser


def _builder_config(builder: trt.Builder, options: BuildOptions) -> trt.IBuilderConfig:
    """The builder configuration: workspace, precision (TF32 off) and compatibility flags.

    Raises:
        TensorRTError: this TensorRT lacks bf16 or the hardware compatibility level.
    """
    import tensorrt as trt

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gb * 2**30))
    config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32 (TF32 is on by default)
    if options.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif options.precision == "bf16":
        if not hasattr(trt.BuilderFlag, "BF16"):
            raise TensorRTError(f"TensorRT {trt.__version__} has no bf16 (needs 9 or later)")
        config.set_flag(trt.BuilderFlag.BF16)
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if options.hardware_compatibility != "none":
        level = options.hardware_compatibility.upper()
        if not hasattr(trt.HardwareCompatibilityLevel, level):
            raise TensorRTError(
                f"TensorRT {trt.__version__} has no hardware compatibility level {level}"
            )
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, level)
    return config


def _add_batch_profile(
    builder: trt.Builder,
    config: trt.IBuilderConfig,
    options: BuildOptions,
    sizes: tuple[int, int, int, int],
    where: str,
) -> None:
    """Add the optimisation profile over the batch axis ``1 .. max_batch`` (``sizes``:
    frame height and width, tokens and feature width).

    Raises:
        TensorRTError: TensorRT rejected the profile.
    """
    import tensorrt as trt

    height, width, tokens, dim = sizes
    b, opt = options.max_batch, options.opt
    profile = builder.create_optimization_profile()
    frames, state = INPUT_NAMES
    profile.set_shape(
        frames,
        trt.Dims([1, height, width, 3]),
        trt.Dims([opt, height, width, 3]),
        trt.Dims([b, height, width, 3]),
    )
    profile.set_shape(
        state, trt.Dims([1, tokens, dim]), trt.Dims([opt, tokens, dim]), trt.Dims([b, tokens, dim])
    )
    if config.add_optimization_profile(profile) < 0:
        raise TensorRTError(f"TensorRT rejected the batch profile 1..{b} ({where})")


def _load_timing_cache(config: trt.IBuilderConfig, path: Path | None) -> trt.ITimingCache | None:
    """Attach the timing cache at ``path`` (or a fresh one) to ``config``; return it."""
    if path is None:
        return None
    data = b""
    if path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("cannot read the timing cache %s (%s); starting a new one", path, exc)
    cache: trt.ITimingCache | None = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, False):
        log.warning("TensorRT rejected the timing cache %s; starting a new one", path)
        cache = config.create_timing_cache(b"")
        if cache is None or not config.set_timing_cache(cache, False):
            log.warning("TensorRT rejected an empty timing cache; building without one")
            return None
    elif data:
        log.info("reusing timing cache %s (%d bytes)", path, len(data))
    return cache
