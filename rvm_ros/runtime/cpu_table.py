"""The measured table behind ``backend="auto"`` on a CPU: fastest backend per (features, precision).

Each entry lists the backends fastest first, each with the figure that put it there
(`rvm-ros bench`, RVM-S at 256x256, batch 1, 2 cores; docs/BENCHMARKS.md). `cpu_choice`
takes the first one that is installed and says why the ones before it were passed over.
Feature sets not measured with a backend keep the older measured rule for it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

# CPU feature sets, best first: a CPU is the first whose flags it all has.
FEATURE_SETS: tuple[tuple[str, frozenset[str]], ...] = (
    ("amx", frozenset({"amx_bf16", "amx_int8", "avx512_bf16", "avx512f"})),
    ("avx512_bf16", frozenset({"avx512_bf16", "avx512f"})),
    ("avx512", frozenset({"avx512f"})),
    ("avx2", frozenset({"avx2"})),
)

# (feature set, precision) -> ((backend, why), ...) fastest first. The "amx" rows: one
# `rvm-ros bench` run on the 2-core Xeon (AMX), 2026-12-01 23:58 UTC, machine loaded
# (load average 7 on 2 cores), p50 per frame at batch 1 (docs/BENCHMARKS.md, issue 14).
_AMX = "RVM-S 256x256, 2 cores, 2026-12-01"
CPU_TABLE: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("amx", "fp32"): (
        ("openvino", f"OpenVINO fp32 measured fastest: 409 ms vs ONNX Runtime 477 ms ({_AMX})"),
        ("onnxruntime", "ONNX Runtime fp32 measured faster than torch eager fp32"),
        ("torch", "torch eager fp32"),
    ),
    ("amx", "bf16"): (
        (
            "openvino",
            f"OpenVINO bf16 (AMX) measured fastest: 145 ms vs torch bf16 4351 ms ({_AMX})",
        ),
        ("torch", "torch bf16 (oneDNN AMX kernels)"),
    ),
    ("amx", "int8"): (
        (
            "openvino",
            f"OpenVINO int8 (NNCF) measured fastest: 131 ms vs ONNX Runtime 184 ms ({_AMX})",
        ),
        ("onnxruntime", "ONNX Runtime dynamic int8"),
    ),
    ("amx", "fp16"): (("torch", "fp16 needs a GPU"),),
}
# The "avx512_bf16" rows (AVX-512 BF16 and VNNI, no AMX): one `rvm-ros bench` run on the
# 2-core AMD EPYC (Zen 4 class), 2026-12-07 22:59 UTC, load average 1.1-1.4, p50 at batch 1
# (docs/BENCHMARKS.md, "backend=auto on AVX-512 BF16 without AMX"); fp32 pools the rounds
# of that run and the one before it (22:56 UTC).
_ZEN = "RVM-S 256x256, 2 cores, AMD EPYC, 2026-12-07"
CPU_TABLE |= {
    ("avx512_bf16", "fp32"): (
        (
            "onnxruntime",
            "ONNX Runtime fp32 ties OpenVINO fp32 (medians of 6 rounds 99.6 vs 100.1 ms; "
            f"ONNX Runtime steadier, 35 % less memory) and beats torch eager 127 ms ({_ZEN})",
        ),
        ("openvino", "OpenVINO fp32 measured as fast as ONNX Runtime fp32"),
        ("torch", "torch eager fp32"),
    ),
    ("avx512_bf16", "bf16"): (
        ("openvino", f"OpenVINO bf16 measured fastest: 60.4 ms vs torch bf16 76.1 ms ({_ZEN})"),
        ("torch", "torch bf16 (oneDNN AVX-512 BF16 kernels)"),
    ),
    ("avx512_bf16", "int8"): (
        (
            "openvino",
            f"OpenVINO int8 (NNCF) measured fastest: 37.5 ms vs ONNX Runtime 47.4 ms ({_ZEN})",
        ),
        ("onnxruntime", "ONNX Runtime dynamic int8"),
    ),
    ("avx512_bf16", "fp16"): (("torch", "fp16 needs a GPU"),),
}
_OLDER: dict[str, tuple[tuple[str, str], ...]] = {
    "fp32": (
        ("onnxruntime", "ONNX Runtime fp32 measured faster than torch eager fp32 on AVX-512"),
        ("torch", "torch eager fp32"),
    ),
    "bf16": (("torch", "bf16 on CPU runs on torch (oneDNN AVX-512 BF16 kernels)"),),
    "int8": (("onnxruntime", "int8 on CPU runs on ONNX Runtime dynamic quantization"),),
    "fp16": (("torch", "fp16 needs a GPU"),),
}
for _features in ("avx512", "avx2", "generic"):
    for _precision, _rows in _OLDER.items():
        CPU_TABLE[(_features, _precision)] = _rows


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's flags from ``/proc/cpuinfo`` (empty where it is not readable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_feature_set(flags: frozenset[str] | None = None) -> str:
    """The name of this CPU's feature set in `CPU_TABLE` (``generic`` when none matches)."""
    have = cpu_flags() if flags is None else flags
    for name, needs in FEATURE_SETS:
        if needs <= have:
            return name
    return "generic"


def cpu_choice(
    precision: str,
    available: Callable[[str], tuple[bool, str]],
    features: str | None = None,
) -> tuple[str, str]:
    """The fastest installed CPU backend for ``precision`` and the reason.

    Args:
        precision: ``fp32``, ``bf16``, ``fp16`` or ``int8``.
        available: ``backend -> (ok, why not)``.
        features: feature set (default: this CPU's).

    Returns:
        ``(backend, reason)``; torch when nothing in the table is installed.
    """
    fs = features or cpu_feature_set()
    rows = CPU_TABLE.get((fs, precision), (("torch", "no measured entry"),))
    passed: list[str] = []
    for backend, why in rows:
        ok, why_not = available(backend)
        if ok:
            return backend, "; ".join([*passed, f"{why} ({fs} CPU, {precision})"])
        passed.append(f"{backend} skipped: {why_not}")
    return "torch", "; ".join([*passed, f"torch fallback ({fs} CPU, {precision})"])
