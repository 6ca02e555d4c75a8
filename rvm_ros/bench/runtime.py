"""`rvm-ros bench` library side: per-step latency, throughput, memory and accuracy.

Every measured configuration (backend x precision) runs in its own fresh process (so its
peak memory is its own and one backend's thread pools cannot slow another), after a
warm-up, on the same deterministic frames. Torch eager float32 on the same device is
always measured in the same run as the reference of ``speedup_vs_torch_eager_fp32`` and
of ``cosine_vs_fp32`` (mean per-token cosine similarity of the features).
With ``rounds > 1`` the configurations alternate (A B A B ...) and their step times are
pooled, so a drifting machine affects them alike. A configuration may run several cameras
batched in one step (``Target.cameras``); each batch size gets its own reference row, and
a batched row also reports its per-camera-frame cost against the same configuration at
batch 1. Optionally (``peaks=True``) each round also measures the machine's matmul peak
per precision (`rvm_ros.bench.peak`), and every row gets its achieved GFLOP/s (the model's
FLOPs per frame, counted on the torch model, over its p50) and that figure's fraction of
the peak of its precision. Frames are synthetic, or a real video (``video=``) whose
frames every camera streams from a different start.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from rvm_ros.bench.runtime_report import (
    BenchConfig,
    BenchReport,
    Measurement,
    PeaksRecord,
    PeakTable,
    ResultRow,
    machine_info,
)
from rvm_ros.imaging.synthetic import synthetic_frames

if TYPE_CHECKING:
    from rvm_ros.model import RVM

log = logging.getLogger(__name__)

REFERENCE = ("torch", "fp32")
COMPARE_STEPS = 8  # steps whose features are compared with the float32 reference
CAMERA_OFFSET = 7  # frames between the start points of the cameras in a real video


@dataclass(frozen=True)
class Target:
    """One configuration to measure (``cameras``: frames per step, ``None``: run_bench's)."""

    backend: str
    precision: str
    cameras: int | None = None

    @property
    def label(self) -> str:
        """``backend/precision`` (``xB`` appended for a batch of B cameras)."""
        batch = f" x{self.cameras}" if self.cameras and self.cameras > 1 else ""
        return f"{self.backend}/{self.precision}{batch}"


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
    video: str | None = None
    count_flops: bool = False
    compare: bool = True  # stream the first COMPARE_STEPS frames for the cosine


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / (1024.0 * 1024.0)


def measure(spec: BenchSpec) -> Measurement:
    """Create the encoder of ``spec``, warm up, time ``spec.frames`` steps (one process).

    Returns:
        ``info`` (EncoderInfo dict), ``latencies_ms`` (one per step), ``features`` (the
        first `COMPARE_STEPS` steps' features, from the zero state), ``peak_rss_mb``,
        ``create_s``, ``peak_cuda_mb`` (CUDA only).
    """
    import torch

    from rvm_ros.checkpoint.load import load_model
    from rvm_ros.runtime import create_encoder, encode_video

    if spec.threads:
        torch.set_num_threads(spec.threads)
    count = max(spec.frames, COMPARE_STEPS)
    if spec.video:
        video = video_frames(spec.video, count, spec.cameras, spec.height, spec.width)
    else:
        video = synthetic_frames(count, spec.cameras, spec.height, spec.width, spec.seed)
    names = [f"cam{i}" for i in range(spec.cameras)]
    start = time.perf_counter()
    model = load_model(spec.checkpoint)
    model.decoder = None  # streaming only
    flop_tick = time.perf_counter()
    gflop = step_gflop(model, spec.height, spec.width) if spec.count_flops else None
    start += time.perf_counter() - flop_tick  # the FLOP count is not creation time
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
    features = (  # [T, B, N, D]; video is [T, B, H, W, 3], encode_video takes [B, T, ...]
        encode_video(encoder, video[:COMPARE_STEPS].swapaxes(0, 1), names).swapaxes(0, 1)
        if spec.compare
        else None
    )
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
    result: Measurement = {
        "info": encoder.info.as_dict(),
        "latencies_ms": latencies,
        "cpu_ms": cpu,
        "features": features,
        "peak_rss_mb": _peak_rss_mb(),
        "create_s": create_s,
    }
    if gflop is not None:
        result["gflop_per_frame"] = gflop
    if cuda:
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    encoder.close()
    return result


def step_gflop(model: RVM, height: int, width: int) -> float:
    """GFLOP of one recurrent step of one frame (torch's FLOP counter; multiply-add = 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    frames = torch.zeros(1, height, width, 3, dtype=torch.uint8)
    state = model.init_state(1, height, width)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.step(frames, state)
    return float(counter.get_total_flops()) / 1e9


def video_frames(path: str, count: int, cameras: int, height: int, width: int) -> np.ndarray:
    """``uint8 [count, cameras, H, W, 3]`` from a real video: camera ``c`` starts at frame
    ``c * CAMERA_OFFSET`` and the video loops when it is shorter."""
    from rvm_ros.imaging.frames import load_frames

    need = count + CAMERA_OFFSET * (cameras - 1)
    clip = load_frames(path, height, width, max_frames=need)[0]  # [T, H, W, 3]
    index = (np.arange(count)[:, None] + CAMERA_OFFSET * np.arange(cameras)[None]) % len(clip)
    return np.ascontiguousarray(clip[index])


def measure_peaks(threads: int | None) -> PeaksRecord:
    """The machine's matmul peak per precision (`rvm_ros.bench.peak.matmul_peaks`)."""
    from rvm_ros.bench.peak import matmul_peaks

    return {"peaks": matmul_peaks(threads=threads)}


ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")


def _measure_isolated(spec: BenchSpec) -> Measurement:
    """`measure` in a fresh spawned process."""
    return _isolated(measure, spec)


def _isolated_peaks(threads: int | None) -> PeaksRecord:
    """`measure_peaks` in a fresh spawned process."""
    return _isolated(measure_peaks, threads)


def _isolated(fn: Callable[[ArgT], ResultT], arg: ArgT) -> ResultT:
    """``fn(arg)`` in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, arg).result()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-token cosine similarity of ``[..., D]`` arrays."""
    num = (a.astype(np.float64) * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return float(np.mean(num / np.maximum(den, 1e-12)))


def run_bench(
    checkpoint: str,
    targets: Sequence[Target],
    *,
    height: int = 0,
    width: int = 0,
    cameras: int = 1,
    frames: int = 50,
    warmup: int = 5,
    device: str | None = None,
    threads: int | None = None,
    cache_dir: str | None = None,
    rounds: int = 1,
    isolate: bool = True,
    video: str | None = None,
    peaks: bool = False,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Measure each target and the torch eager float32 reference (one per batch size).

    Args:
        checkpoint: checkpoint path or ``random:<variant>``.
        targets: configurations to measure (the references are added when missing).
        height: frame height (0: the checkpoint's training size, from its model card;
            256 when the card does not say).
        width: frame width (0: as ``height``).
        cameras: frames per step of targets that do not set their own.
        frames: timed steps per target (split over ``rounds``).
        warmup: untimed steps before timing (per round).
        device: ``cpu``, ``cuda`` or ``None`` (the backend's default).
        threads: CPU threads for torch / onnxruntime / openvino (default: all cores).
        cache_dir: cache of exported ONNX files / engines.
        rounds: alternate the targets this many times, pooling their step times.
        isolate: measure each target in its own fresh process (else in this one).
        video: a real video whose frames are streamed (default: synthetic frames).
        peaks: measure the matmul peak per precision in every round (its own process)
            and report each row's GFLOP/s and fraction of its precision's peak.
        progress: called with a line of text after each measurement.

    Returns:
        ``{"machine", "config", "results"}`` (and ``"peaks"`` with ``peaks=True``); the
        fields of each result are described in :class:`ResultRow`.

    Raises:
        ValueError: bad counts.
    """
    if frames < 1 or rounds < 1 or cameras < 1 or warmup < 0:
        raise ValueError(
            f"need frames >= 1, rounds >= 1, cameras >= 1, warmup >= 0 "
            f"(got {frames}, {rounds}, {cameras}, {warmup})"
        )
    from rvm_ros.checkpoint.card import model_input_size

    height, width = model_input_size(checkpoint, height, width, (256, 256))  # warns once
    plan = _BenchPlan(
        specs=_SpecMaker(checkpoint, device, height, width, cameras, threads, cache_dir, video),
        order=measure_order(targets, cameras),
        rounds=rounds,
        per_round=max(1, -(-frames // rounds)),
        warmup=warmup,
        isolate=isolate,
        peaks=peaks,
        threads=threads,
        say=progress or (lambda _line: None),
    )
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    _prepare(plan)
    collected, gflop, peak_rounds = _measure_rounds(plan)
    peak_table = _median_peaks(peak_rounds)
    report: BenchReport = {
        "machine": machine_info(),
        "config": _run_config(checkpoint, frames, plan, video, load_start),
        "results": _result_rows(plan, collected, gflop, peak_table),
    }
    if peaks:
        report["peaks"] = peak_table
    return report


def _run_config(
    checkpoint: str,
    frames: int,
    plan: _BenchPlan,
    video: str | None,
    load_start: tuple[float, float, float] | None,
) -> BenchConfig:
    """The report's ``config`` section: what was asked for, when, and the machine's load."""
    return {
        "checkpoint": checkpoint,
        "frames": frames,
        "warmup": plan.warmup,
        "rounds": plan.rounds,
        "threads": plan.threads,
        "isolated": plan.isolate,
        "video": video,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loadavg_start": list(load_start) if load_start else None,
        "loadavg_end": list(os.getloadavg()) if load_start else None,
    }


def measure_order(targets: Sequence[Target], cameras: int) -> list[Target]:
    """The targets in measuring order: per batch size its torch eager float32 reference,
    then the other targets of that size (duplicates dropped; ``cameras``: the default)."""
    wanted = [Target(t.backend, t.precision, t.cameras or cameras) for t in targets]
    batches = sorted({int(t.cameras or cameras) for t in wanted} or {cameras})
    order: list[Target] = []
    for batch in batches:
        reference = Target(*REFERENCE, batch)
        order += [
            reference,
            *[t for t in dict.fromkeys(wanted) if t.cameras == batch and t != reference],
        ]
    return order


@dataclass(frozen=True)
class _SpecMaker:
    """The settings shared by every `BenchSpec` of one `run_bench` call."""

    checkpoint: str
    device: str | None
    height: int
    width: int
    cameras: int
    threads: int | None
    cache_dir: str | None
    video: str | None

    def spec(
        self, target: Target, steps: int, warm: int, flops: bool = False, compare: bool = True
    ) -> BenchSpec:
        """The spec measuring ``target`` for ``steps`` steps after ``warm`` untimed ones."""
        return BenchSpec(
            checkpoint=self.checkpoint,
            backend=target.backend,
            precision=target.precision,
            device=self.device,
            height=self.height,
            width=self.width,
            cameras=int(target.cameras or self.cameras),
            frames=steps,
            warmup=warm,
            threads=self.threads,
            cache_dir=self.cache_dir,
            eager=target.backend == REFERENCE[0] and target.precision == REFERENCE[1],
            video=self.video,
            count_flops=flops,
            compare=compare,
        )


@dataclass(frozen=True)
class _BenchPlan:
    """What one `run_bench` call measures and how."""

    specs: _SpecMaker
    order: list[Target]
    rounds: int
    per_round: int
    warmup: int
    isolate: bool
    peaks: bool
    threads: int | None
    say: Callable[[str], None]

    def run(self, spec: BenchSpec) -> Measurement:
        """`measure` ``spec``, in a fresh process when isolating."""
        return _measure_isolated(spec) if self.isolate else measure(spec)

    def batch(self, target: Target) -> int:
        """Frames per step of ``target``."""
        return int(target.cameras or self.specs.cameras)


def _prepare(plan: _BenchPlan) -> None:
    """Create each non-torch configuration once, untimed: exports, graph optimisations
    and quantisation are cached before timing."""
    prepared: set[tuple[str, str]] = set()
    for target in [t for t in plan.order if t.backend != "torch"]:
        if (target.backend, target.precision) in prepared:
            continue
        out = plan.run(plan.specs.spec(target, 1, 0, compare=False))
        prepared.add((target.backend, target.precision))
        plan.say(f"[bench] prepared {target.label} in {out['create_s']:.1f} s")


def _measure_rounds(
    plan: _BenchPlan,
) -> tuple[dict[Target, list[Measurement]], float | None, list[PeakTable]]:
    """The timed rounds: per target its measurements, the step's GFLOP (counted once,
    with ``peaks``) and each round's matmul peaks."""
    collected: dict[Target, list[Measurement]] = {t: [] for t in plan.order}
    gflop: float | None = None
    peak_rounds: list[PeakTable] = []
    for r in range(plan.rounds):
        if plan.peaks:
            peak_rounds.append(_round_peaks(plan, r))
        for target in plan.order:
            first_ref = gflop is None and target == plan.order[0]
            spec = plan.specs.spec(
                target, plan.per_round, plan.warmup, flops=plan.peaks and first_ref, compare=r == 0
            )
            out = plan.run(spec)
            if "gflop_per_frame" in out:
                gflop = float(out["gflop_per_frame"])
            collected[target].append(out)
            lat = np.asarray(out["latencies_ms"])
            plan.say(
                f"[bench] round {r + 1}/{plan.rounds} {target.label} on {out['info']['device']}: "
                f"{len(lat)} steps, p50 {np.percentile(lat, 50):.2f} ms "
                f"(created in {out['create_s']:.1f} s)"
            )
    return collected, gflop, peak_rounds


def _round_peaks(plan: _BenchPlan, r: int) -> PeakTable:
    """Round ``r``'s matmul peaks (reported through ``plan.say``)."""
    isolated = plan.isolate
    got = _isolated_peaks(plan.threads) if isolated else measure_peaks(plan.threads)
    figs = ", ".join(f"{k} {v.get('peak', 0):.0f}" for k, v in got["peaks"].items())
    plan.say(f"[bench] round {r + 1}/{plan.rounds} matmul peak GFLOP/s: {figs}")
    return got["peaks"]


def _p50(latencies: Sequence[float] | np.ndarray) -> float:
    return float(np.percentile(latencies, 50))


def _result_rows(
    plan: _BenchPlan,
    collected: dict[Target, list[Measurement]],
    gflop: float | None,
    peak_table: PeakTable,
) -> list[ResultRow]:
    """One report row per target, against the reference of its batch size."""
    p50_of = {
        t: _p50(np.concatenate([o["latencies_ms"] for o in collected[t]])) for t in plan.order
    }
    results = []
    for target in plan.order:
        batch = plan.batch(target)
        reference = Target(*REFERENCE, batch)
        entry = _result_row(plan, target, collected[target], collected[reference], p50_of)
        single = Target(target.backend, target.precision, 1)
        if batch > 1 and single in p50_of:
            entry["per_camera_frame_vs_batch1"] = (p50_of[target] / batch) / p50_of[single]
        outs = collected[target]
        if gflop is not None:
            entry["gflop_per_frame"] = gflop
            entry["gflop_per_s"] = gflop * batch * 1000.0 / p50_of[target]
            peak = peak_table.get(outs[0]["info"]["precision"], {}).get("peak")
            if peak:
                entry["fraction_of_peak"] = entry["gflop_per_s"] / peak
        if "peak_cuda_mb" in outs[0]:
            entry["peak_cuda_mb"] = max(o["peak_cuda_mb"] for o in outs)
        if target == reference:
            entry["reference"] = True
        results.append(entry)
    return results


def _result_row(
    plan: _BenchPlan,
    target: Target,
    outs: list[Measurement],
    ref_outs: list[Measurement],
    p50_of: dict[Target, float],
) -> ResultRow:
    """The figures every row has: latency, throughput, memory, speed-ups, cosine."""
    batch = plan.batch(target)
    ref_rounds = [_p50(o["latencies_ms"]) for o in ref_outs]
    lat = np.concatenate([o["latencies_ms"] for o in outs])
    p50 = p50_of[target]
    round_p50 = [_p50(o["latencies_ms"]) for o in outs]
    info = outs[0]["info"]
    ref_features, features = ref_outs[0]["features"], outs[0]["features"]
    assert features is not None and ref_features is not None  # round 0 compares
    return {
        "backend": info["backend"],
        "precision": info["precision"],
        "device": info["device"],
        "cameras": batch,
        "height": plan.specs.height,
        "width": plan.specs.width,
        "latency_ms": {
            "p50": p50,
            "p90": float(np.percentile(lat, 90)),
            "p99": float(np.percentile(lat, 99)),
        },
        "throughput_fps": 1000.0 * batch / p50,
        "steps_per_s": 1000.0 / p50,
        "cpu_ms_p50": _p50(np.concatenate([o["cpu_ms"] for o in outs])),
        "peak_rss_mb": max(o["peak_rss_mb"] for o in outs),
        "speedup_vs_torch_eager_fp32": p50_of[Target(*REFERENCE, batch)] / p50,
        "cosine_vs_fp32": _cosine(features[:, 0], ref_features[:, 0]),
        "round_p50_ms": round_p50,
        "speedup_paired": float(
            np.median([a / b for a, b in zip(ref_rounds, round_p50, strict=True)])
        ),
        "steps": len(lat),
        "model_id": info["model_id"],
        "reason": info["reason"],
    }


def _median_peaks(rounds: list[PeakTable]) -> PeakTable:
    """Per precision and runtime the median GFLOP/s over rounds; ``peak`` the best median."""
    table: dict[str, dict[str, float]] = {}
    for precision in dict.fromkeys(k for r in rounds for k in r):
        figs: dict[str, float] = {}
        for runtime in dict.fromkeys(k for r in rounds for k in r.get(precision, {})):
            if runtime != "peak":
                figs[runtime] = float(
                    np.median([r[precision][runtime] for r in rounds if runtime in r[precision]])
                )
        if figs:
            figs["peak"] = max(figs.values())
        table[precision] = figs
    return table


__all__ = [
    "BenchConfig",
    "BenchReport",
    "BenchSpec",
    "Measurement",
    "PeakTable",
    "PeaksRecord",
    "ResultRow",
    "Target",
    "measure",
    "measure_order",
    "measure_peaks",
    "run_bench",
    "synthetic_frames",
]
