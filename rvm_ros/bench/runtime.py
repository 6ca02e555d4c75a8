"""`rvm-ros bench` library side: per-step latency, throughput, memory and accuracy.

Every measured configuration (backend x precision) runs in its own fresh process (so its
peak memory is its own and one backend's thread pools cannot slow another), after a
warm-up, on the same deterministic frames. Torch eager float32 on the same device is
always measured in the same run as the reference of ``speedup_vs_torch_eager_fp32`` and
of ``cosine_vs_fp32`` (mean per-token cosine similarity of the features).
With ``rounds > 1`` the configurations alternate (A B A B ...) and their step times are
pooled, so a drifting machine affects them alike.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rvm_ros.imaging.synthetic import synthetic_frames

log = logging.getLogger(__name__)

REFERENCE = ("torch", "fp32")
COMPARE_STEPS = 4  # steps whose features are compared with the float32 reference


@dataclass(frozen=True)
class Target:
    """One configuration to measure."""

    backend: str
    precision: str

    @property
    def label(self) -> str:
        """``backend/precision``."""
        return f"{self.backend}/{self.precision}"


@dataclass(frozen=True)
class BenchSpec:
    """What a measuring process does (picklable)."""

    checkpoint: str
    backend: str
    precision: str
    device: str | None
    height: int
    width: int
    cameras: int
    frames: int
    warmup: int
    threads: int | None
    cache_dir: str | None
    eager: bool
    seed: int = 0


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / (1024.0 * 1024.0)


def measure(spec: BenchSpec) -> dict[str, Any]:
    """Create the encoder of ``spec``, warm up, time ``spec.frames`` steps (one process).

    Returns:
        ``info`` (EncoderInfo dict), ``latencies_ms`` (one per step), ``features`` (the
        first `COMPARE_STEPS` steps' features, from the zero state), ``peak_rss_mb``,
        ``create_s``, ``peak_cuda_mb`` (CUDA only).
    """
    import torch

    from rvm_ros.checkpoint.load import load_model
    from rvm_ros.runtime import create_encoder

    if spec.threads:
        torch.set_num_threads(spec.threads)
    video = synthetic_frames(
        max(spec.frames, COMPARE_STEPS), spec.cameras, spec.height, spec.width, spec.seed
    )
    names = [f"cam{i}" for i in range(spec.cameras)]
    start = time.perf_counter()
    model = load_model(spec.checkpoint)
    model.decoder = None  # streaming only
    encoder = create_encoder(
        model,
        backend=spec.backend,
        precision=spec.precision,
        device=spec.device,
        height=spec.height,
        width=spec.width,
        max_batch=spec.cameras,
        cache_dir=spec.cache_dir,
        threads=spec.threads,
        cuda_graphs=not spec.eager,
    )
    del model
    create_s = time.perf_counter() - start
    cuda = encoder.info.device.startswith("cuda")
    features = np.stack([encoder.step(video[t], names) for t in range(COMPARE_STEPS)])
    for t in range(spec.warmup):
        encoder.step(video[t % len(video)], names)
    encoder.reset()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    latencies, cpu = [], []
    for t in range(spec.frames):
        tick, cpu_tick = time.perf_counter(), time.process_time()
        encoder.step(video[t], names)  # returns host features: includes the device sync
        latencies.append((time.perf_counter() - tick) * 1000.0)
        cpu.append((time.process_time() - cpu_tick) * 1000.0)
    result = {
        "info": encoder.info.as_dict(),
        "latencies_ms": latencies,
        "cpu_ms": cpu,
        "features": features,
        "peak_rss_mb": _peak_rss_mb(),
        "create_s": create_s,
    }
    if cuda:
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    encoder.close()
    return result


def _measure_isolated(spec: BenchSpec) -> dict[str, Any]:
    """`measure` in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(measure, spec).result()


def machine_info() -> dict[str, Any]:
    """Facts about this machine and its software for the report."""
    import torch

    cpu = platform.processor() or "unknown"
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("unknown", "x86_64", ""):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")
                    flags = [f for f in wanted if f in have]
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except Exception:
        info["tensorrt"] = None
    return info


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-token cosine similarity of ``[..., D]`` arrays."""
    num = (a.astype(np.float64) * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return float(np.mean(num / np.maximum(den, 1e-12)))


def run_bench(
    checkpoint: str,
    targets: Sequence[Target],
    *,
    height: int = 256,
    width: int = 256,
    cameras: int = 1,
    frames: int = 50,
    warmup: int = 5,
    device: str | None = None,
    threads: int | None = None,
    cache_dir: str | None = None,
    rounds: int = 1,
    isolate: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure each target and the torch eager float32 reference.

    Args:
        checkpoint: checkpoint path or ``random:<variant>``.
        targets: configurations to measure (the reference is added when missing).
        height: frame height.
        width: frame width.
        cameras: frames per step (batch).
        frames: timed steps per target (split over ``rounds``).
        warmup: untimed steps before timing (per round).
        device: ``cpu``, ``cuda`` or ``None`` (the backend's default).
        threads: CPU threads for torch / onnxruntime (default: all cores).
        cache_dir: cache of exported ONNX files / engines.
        rounds: alternate the targets this many times, pooling their step times.
        isolate: measure each target in its own fresh process (else in this one).
        progress: called with a line of text after each measurement.

    Returns:
        ``{"machine": {...}, "config": {...}, "results": [...]}``; each result has
        ``backend, precision, device, cameras, height, width, latency_ms {p50, p90,
        p99}, throughput_fps`` (camera-frames per second), ``steps_per_s``,
        ``peak_rss_mb``, ``speedup_vs_torch_eager_fp32`` (reference p50 / p50),
        ``cpu_ms_p50`` (process CPU time per step, all threads: less sensitive than wall
        time to other load on a shared machine, but it counts spin-waiting threads),
        ``cosine_vs_fp32``, ``round_p50_ms`` (p50 of each round) and ``speedup_paired``
        (median over rounds of the reference's round p50 / this round p50: measured
        back to back, the figure least disturbed by drifting load on a shared machine),
        ``model_id``, ``reason``.

    Raises:
        ValueError: bad counts.
    """
    if frames < 1 or rounds < 1 or cameras < 1 or warmup < 0:
        raise ValueError(
            f"need frames >= 1, rounds >= 1, cameras >= 1, warmup >= 0 "
            f"(got {frames}, {rounds}, {cameras}, {warmup})"
        )
    say = progress or (lambda line: None)
    reference = Target(*REFERENCE)
    order = [reference, *[t for t in dict.fromkeys(targets) if t != reference]]
    per_round = max(1, -(-frames // rounds))
    runner = _measure_isolated if isolate else measure
    collected: dict[Target, list[dict[str, Any]]] = {t: [] for t in order}
    for target in [t for t in order if t.backend != "torch"]:
        # untimed: exports / graph optimisations / quantisation are cached before timing
        prep = BenchSpec(
            checkpoint,
            target.backend,
            target.precision,
            device,
            height,
            width,
            cameras,
            1,
            0,
            threads,
            cache_dir,
            eager=False,
        )
        out = runner(prep)
        say(f"[bench] prepared {target.label} in {out['create_s']:.1f} s")
    for r in range(rounds):
        for target in order:
            spec = BenchSpec(
                checkpoint=checkpoint,
                backend=target.backend,
                precision=target.precision,
                device=device,
                height=height,
                width=width,
                cameras=cameras,
                frames=per_round,
                warmup=warmup,
                threads=threads,
                cache_dir=cache_dir,
                eager=target == reference,
            )
            out = runner(spec)
            collected[target].append(out)
            lat = np.asarray(out["latencies_ms"])
            say(
                f"[bench] round {r + 1}/{rounds} {target.label} on {out['info']['device']}: "
                f"{len(lat)} steps, p50 {np.percentile(lat, 50):.2f} ms "
                f"(created in {out['create_s']:.1f} s)"
            )
    ref_lat = np.concatenate([o["latencies_ms"] for o in collected[reference]])
    ref_p50 = float(np.percentile(ref_lat, 50))
    ref_rounds = [float(np.percentile(o["latencies_ms"], 50)) for o in collected[reference]]
    ref_features = collected[reference][0]["features"]
    results = []
    for target in order:
        outs = collected[target]
        lat = np.concatenate([o["latencies_ms"] for o in outs])
        p50 = float(np.percentile(lat, 50))
        round_p50 = [float(np.percentile(o["latencies_ms"], 50)) for o in outs]
        info = outs[0]["info"]
        entry: dict[str, Any] = {
            "backend": info["backend"],
            "precision": info["precision"],
            "device": info["device"],
            "cameras": cameras,
            "height": height,
            "width": width,
            "latency_ms": {
                "p50": p50,
                "p90": float(np.percentile(lat, 90)),
                "p99": float(np.percentile(lat, 99)),
            },
            "throughput_fps": 1000.0 * cameras / p50,
            "steps_per_s": 1000.0 / p50,
            "cpu_ms_p50": float(np.percentile(np.concatenate([o["cpu_ms"] for o in outs]), 50)),
            "peak_rss_mb": max(o["peak_rss_mb"] for o in outs),
            "speedup_vs_torch_eager_fp32": ref_p50 / p50,
            "cosine_vs_fp32": _cosine(outs[0]["features"], ref_features),
            "round_p50_ms": round_p50,
            "speedup_paired": float(
                np.median([a / b for a, b in zip(ref_rounds, round_p50, strict=True)])
            ),
            "steps": len(lat),
            "model_id": info["model_id"],
            "reason": info["reason"],
        }
        if "peak_cuda_mb" in outs[0]:
            entry["peak_cuda_mb"] = max(o["peak_cuda_mb"] for o in outs)
        if target == reference:
            entry["reference"] = True
        results.append(entry)
    return {
        "machine": machine_info(),
        "config": {
            "checkpoint": checkpoint,
            "frames": frames,
            "warmup": warmup,
            "rounds": rounds,
            "threads": threads,
            "isolated": isolate,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "results": results,
    }


def markdown_table(report: dict[str, Any], command: str | None = None) -> str:
    """A markdown section: the machine, the command and one row per result."""
    m = report["machine"]
    c = report["config"]
    lines = [
        f"### {c['checkpoint']} at {report['results'][0]['height']}x"
        f"{report['results'][0]['width']}, {report['results'][0]['cameras']} camera(s) "
        f"({c['date']})",
        "",
        f"Machine: {m['cpu']} ({', '.join(m['cpu_flags']) or 'no AVX flags'}), "
        f"{m['cores']} cores, {m['os']}; Python {m['python']}, torch {m['torch']}, "
        f"onnxruntime {m['onnxruntime']}, GPU {m['gpu'] or 'none'}.",
        "",
    ]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        "| backend | precision | device | p50 ms | p90 ms | p99 ms | CPU ms/step | camera-frames/s "
        "| peak RSS MB | speed-up vs torch eager fp32 | paired speed-up (per round) "
        "| cosine vs fp32 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ref_rounds = report["results"][0]["round_p50_ms"]
    for r in report["results"]:
        lat = r["latency_ms"]
        ref = " (reference)" if r.get("reference") else ""
        rounds = zip(ref_rounds, r["round_p50_ms"], strict=True)
        per_round = ", ".join(f"{a / b:.2f}" for a, b in rounds)
        lines.append(
            f"| {r['backend']}{ref} | {r['precision']} | {r['device']} | {lat['p50']:.1f} "
            f"| {lat['p90']:.1f} | {lat['p99']:.1f} | {r['cpu_ms_p50']:.1f} "
            f"| {r['throughput_fps']:.2f} "
            f"| {r['peak_rss_mb']:.0f} | {r['speedup_vs_torch_eager_fp32']:.2f}x "
            f"| {r['speedup_paired']:.2f}x ({per_round}) "
            f"| {r['cosine_vs_fp32']:.5f} |"
        )
    return "\n".join(lines) + "\n"


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report as indented JSON."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def append_markdown(text: str, path: str | Path) -> Path:
    """Append a section to a markdown file (created when missing)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write("\n" + text)
    return out


__all__ = [
    "BenchSpec",
    "Target",
    "append_markdown",
    "machine_info",
    "markdown_table",
    "measure",
    "run_bench",
    "synthetic_frames",
    "write_json",
]
