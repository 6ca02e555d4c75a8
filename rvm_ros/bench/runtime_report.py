"""The report of `rvm-ros bench`: its record types, the machine facts it carries, and its
JSON / markdown forms (`rvm_ros.bench.runtime` measures and fills it)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import TypedDict

import numpy as np

from rvm_ros.runtime.base import EncoderInfoDict

__all__ = [
    "BenchConfig",
    "BenchReport",
    "LatencyMs",
    "MachineInfo",
    "Measurement",
    "PeakTable",
    "PeaksRecord",
    "ResultRow",
    "append_markdown",
    "machine_info",
    "markdown_table",
    "write_json",
]


class _MeasurementFields(TypedDict):
    """The keys every `Measurement` has."""

    info: EncoderInfoDict
    latencies_ms: list[float]
    cpu_ms: list[float]
    features: np.ndarray | None
    peak_rss_mb: float
    create_s: float


class Measurement(_MeasurementFields, total=False):
    """What `measure` returns for one configuration (one process)."""

    gflop_per_frame: float
    peak_cuda_mb: float


class LatencyMs(TypedDict):
    """Step latency percentiles in milliseconds."""

    p50: float
    p90: float
    p99: float


class _ResultRowFields(TypedDict):
    """The keys every `ResultRow` has."""

    backend: str
    precision: str
    device: str
    cameras: int
    height: int
    width: int
    latency_ms: LatencyMs
    throughput_fps: float
    steps_per_s: float
    cpu_ms_p50: float
    peak_rss_mb: float
    speedup_vs_torch_eager_fp32: float
    cosine_vs_fp32: float
    round_p50_ms: list[float]
    speedup_paired: float
    steps: int
    model_id: str
    reason: str


class ResultRow(_ResultRowFields, total=False):
    """One configuration's row of the report of `run_bench`.

    ``backend, precision, device, cameras, height, width, latency_ms {p50, p90, p99},
    throughput_fps`` (camera-frames per second), ``steps_per_s``, ``peak_rss_mb``,
    ``speedup_vs_torch_eager_fp32`` (reference p50 / p50, same batch size), ``cpu_ms_p50``
    (process CPU time per step, all threads: less sensitive than wall time to other load on
    a shared machine, but it counts spin-waiting threads), ``cosine_vs_fp32`` (mean
    per-token cosine of the first `COMPARE_STEPS` steps of camera 0 against the reference),
    ``round_p50_ms`` and ``speedup_paired`` (median over rounds of the reference's round p50
    / this round p50: measured back to back, the figure least disturbed by drifting load),
    ``per_camera_frame_vs_batch1`` (batched rows with a batch-1 row of the same
    configuration: (p50 / cameras) / batch-1 p50), ``gflop_per_s`` and ``fraction_of_peak``
    (with ``peaks``: per precision the median over rounds of each runtime's GFLOP/s and
    ``peak``, the best), ``model_id``, ``reason``.
    """

    per_camera_frame_vs_batch1: float
    gflop_per_frame: float
    gflop_per_s: float
    fraction_of_peak: float
    peak_cuda_mb: float
    reference: bool


class MachineInfo(TypedDict):
    """The machine and software versions a report was measured with."""

    cpu: str
    cpu_flags: list[str]
    cores: int | None
    os: str
    python: str
    torch: str
    torch_threads: int
    gpu: str | None
    onnxruntime: str | None
    openvino: str | None
    nncf: str | None
    tensorrt: str | None


class BenchConfig(TypedDict):
    """How a report was measured (arguments of `run_bench`, date, load average)."""

    checkpoint: str
    frames: int
    warmup: int
    rounds: int
    threads: int | None
    isolated: bool
    video: str | None
    date: str
    loadavg_start: list[float] | None
    loadavg_end: list[float] | None


PeakTable = dict[str, dict[str, float]]  # precision -> runtime (and "peak") -> GFLOP/s


class _BenchReportFields(TypedDict):
    """The keys every `BenchReport` has."""

    machine: MachineInfo
    config: BenchConfig
    results: list[ResultRow]


class BenchReport(_BenchReportFields, total=False):
    """What `run_bench` returns (written as JSON by `write_json`)."""

    peaks: PeakTable


class PeaksRecord(TypedDict):
    """What `measure_peaks` returns."""

    peaks: PeakTable


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def _cpu_facts() -> tuple[str, list[str]]:
    """The CPU's name and which of `CPU_FLAGS` it has (from ``/proc/cpuinfo`` on Linux)."""
    cpu = platform.processor() or "unknown"
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("unknown", "x86_64", ""):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = [f for f in CPU_FLAGS if f in have]
                    break
    except OSError:
        pass
    return cpu, flags


def _version_of(name: str) -> str | None:
    """The installed version of a Python package (``None`` when it does not import)."""
    try:
        module = __import__(name)
    except ImportError:
        return None
    return str(getattr(module, "__version__", "unknown")).split("-")[0]


def _tensorrt_version() -> str | None:
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # ImportError, a stub wheel failing at import, or no __version__
        return None


def machine_info() -> MachineInfo:
    """Facts about this machine and its software for the report."""
    import torch

    cpu, flags = _cpu_facts()
    try:
        import onnxruntime

        ort_version: str | None = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "cpu": cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "onnxruntime": ort_version,
        "openvino": _version_of("openvino"),
        "nncf": _version_of("nncf"),
        "tensorrt": _tensorrt_version(),
    }


def markdown_table(report: BenchReport, command: str | None = None) -> str:
    """A markdown section: the machine, its load, the command and one row per result."""
    m = report["machine"]
    c = report["config"]
    rows = report["results"]
    sizes = sorted({r["cameras"] for r in rows})
    lines = [
        f"### {c['checkpoint']} at {rows[0]['height']}x{rows[0]['width']}, "
        f"{' and '.join(str(n) for n in sizes)} camera(s) per step ({c['date']})",
        "",
        f"Machine: {m['cpu']} ({', '.join(m['cpu_flags']) or 'no AVX flags'}), "
        f"{m['cores']} cores, {m['os']}; Python {m['python']}, torch {m['torch']}, "
        f"onnxruntime {m['onnxruntime']}, openvino {m.get('openvino')}, nncf {m.get('nncf')}, "
        f"GPU {m['gpu'] or 'none'}.",
        "",
    ]
    load_start, load_end = c.get("loadavg_start"), c.get("loadavg_end")
    if load_start:
        start = ", ".join(f"{x:.2f}" for x in load_start)
        end = ", ".join(f"{x:.2f}" for x in load_end or [])
        lines += [
            f"Load average (1, 5, 15 min) at start: {start}; at end: {end} "
            f"({m['cores']} cores; above {m['cores']} the machine was shared with other work).",
            "",
        ]
    frames = f"frames of {c['video']}" if c.get("video") else "synthetic frames"
    lines += [f"Frames: {frames}; {c['rounds']} interleaved round(s), medians pooled.", ""]
    if report.get("peaks"):
        peaks = "; ".join(
            f"{k} {v['peak']:.0f} ("
            + ", ".join(f"{rt} {fig:.0f}" for rt, fig in v.items() if rt != "peak")
            + ")"
            for k, v in report["peaks"].items()
            if v
        )
        lines += [f"Matmul peak, GFLOP/s (GOP/s for int8), median of rounds: {peaks}.", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        "| backend | precision | device | cameras | p50 ms | p90 ms | p99 ms | CPU ms/step "
        "| camera-frames/s | peak RSS MB | speed-up vs torch eager fp32 "
        "| paired speed-up (per round) | per camera-frame vs batch 1 | GFLOP/s (of peak) "
        "| cosine vs fp32 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ref_rounds = {r["cameras"]: r["round_p50_ms"] for r in rows if r.get("reference")}
    for r in rows:
        lat = r["latency_ms"]
        ref = " (reference)" if r.get("reference") else ""
        pairs = zip(ref_rounds.get(r["cameras"], r["round_p50_ms"]), r["round_p50_ms"], strict=True)
        per_round = ", ".join(f"{a / b:.2f}" for a, b in pairs)
        batch = r.get("per_camera_frame_vs_batch1")
        merit = ""
        if "gflop_per_s" in r:
            frac = r.get("fraction_of_peak")
            merit = f"{r['gflop_per_s']:.0f}" + (f" ({100 * frac:.0f}%)" if frac else "")
        lines.append(
            f"| {r['backend']}{ref} | {r['precision']} | {r['device']} | {r['cameras']} "
            f"| {lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} | {r['cpu_ms_p50']:.1f} "
            f"| {r['throughput_fps']:.2f} "
            f"| {r['peak_rss_mb']:.0f} | {r['speedup_vs_torch_eager_fp32']:.2f}x "
            f"| {r['speedup_paired']:.2f}x ({per_round}) "
            f"| {f'{batch:.2f}x' if batch else ''} | {merit} "
            f"| {r['cosine_vs_fp32']:.5f} |"
        )
    return "\n".join(lines) + "\n"


def write_json(report: BenchReport, path: str | Path) -> Path:
    """Write the report as indented JSON."""
    from rvm_ros.fsutil import atomic_write

    out = Path(path)
    text = json.dumps(report, indent=2) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text))
    return out


def append_markdown(text: str, path: str | Path) -> Path:
    """Append a section to a markdown file (created when missing)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write("\n" + text)
    return out
