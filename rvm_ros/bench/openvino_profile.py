"""Where an OpenVINO step's time goes: per-layer performance counters by op class.

For each precision (``fp32``, ``bf16``, ``int8``) the step is compiled with OpenVINO's
``PERF_COUNT`` on, streams real or synthetic frames from the zero state, and every executed
layer's wall time (`OpenVINOEncoder.profiling_info`) is summed per op class over the timed
steps: MatMul / FullyConnected per execution precision (int8 / bf16 / f32), attention (the
fused QK-softmax-V subgraph, or a separate Softmax), LayerNorm (MVN and its affine),
GELU, Reorder / Convert, Eltwise, quantise (FakeQuantize), layout moves and the rest. It
also lists the matrix layers that did not run in int8 (their kernel and time) and, when
``fp32`` is profiled too, each precision's mean per-token feature cosine to it.

Run: ``python -m rvm_ros.bench.openvino_profile --checkpoint random:S --height 256
--width 256 --video bikes.mp4 --markdown out.md --json out.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from rvm_ros.runtime.backends.openvino import LayerRecord, OpenVINOEncoder
from rvm_ros.runtime.backends.openvino_int8 import DEFAULT_RECIPE, Int8Recipe, parse_recipe

MATRIX_TYPES = ("FullyConnected", "MatMul", "Convolution", "GroupConvolution", "Deconvolution")
LAYOUT_TYPES = ("Transpose", "Reshape", "Concat", "Split", "Gather", "Broadcast", "StridedSlice")
ELTWISE_TYPES = ("Eltwise", "Subgraph", "Multiply", "Add", "Subtract", "Divide", "Power")


@dataclass(frozen=True)
class LayerTime:
    """One layer's mean time per step and its class.

    Attributes:
        name: the compiled layer's name.
        node_type: the plugin's node type.
        exec_type: the kernel that ran.
        op_class: `classify`'s class.
        precision: `exec_precision` of the kernel.
        ms: mean wall time per step in milliseconds.
    """

    name: str
    node_type: str
    exec_type: str
    op_class: str
    precision: str
    ms: float


@dataclass(frozen=True)
class PrecisionProfile:
    """The profile of one compiled precision.

    Attributes:
        precision: ``fp32``, ``bf16`` or ``int8``.
        steps: timed steps.
        step_ms_p50: median wall time of a whole step (counters on).
        layers_ms: sum of the layers' mean times per step.
        classes: op class -> mean milliseconds per step, largest first.
        float_matrix_layers: the matrix layers not run in int8 (int8 only, slowest first).
        layers: every executed layer.
        cosine_vs_fp32: mean per-token feature cosine to the fp32 profile's features.
    """

    precision: str
    steps: int
    step_ms_p50: float
    layers_ms: float
    classes: dict[str, float]
    float_matrix_layers: list[LayerTime]
    layers: list[LayerTime] = field(repr=False)
    cosine_vs_fp32: float | None = None


def exec_precision(exec_type: str) -> str:
    """``int8`` / ``bf16`` / ``f16`` / ``f32`` of a kernel name (its last precision
    token, e.g. ``brgemm_avx512_amx_I8`` -> ``int8``), ``-`` when it names none."""
    names = {"i8": "int8", "u8": "int8", "bf16": "bf16", "f16": "f16", "fp16": "f16"}
    names.update({"f32": "f32", "fp32": "f32"})
    for token in reversed(exec_type.lower().split("_")):
        if token in names:
            return names[token]
    return "-"


def is_matrix(node_type: str) -> bool:
    """Whether a node type is a matrix product (MatMul, FullyConnected*, Convolution)."""
    return node_type in MATRIX_TYPES or node_type.startswith("FullyConnected")


def classify(node_type: str, name: str, precision: str) -> str:
    """The op class of one compiled layer (its plugin node type, and its name with the
    source layers fused into it: a ``Subgraph`` holding a softmax is attention)."""
    low = name.lower()
    if is_matrix(node_type):
        kind = "Convolution" if "Conv" in node_type else "MatMul/FC"
        return f"{kind} {precision}"
    if node_type in ("ScaledDotProductAttention", "Softmax", "SoftMax") or (
        node_type == "Subgraph" and ("matmul" in low or "softmax" in low)
    ):
        return "attention (QK, softmax, V)"
    if node_type in ("MVN", "RMS", "NormalizeL2") or "layer_norm" in low:
        return "LayerNorm (MVN + affine)"
    if node_type == "Gelu" or "gelu" in low:
        return "GELU"
    if node_type in ("Reorder", "Convert"):
        return "Reorder/Convert"
    if node_type == "FakeQuantize":
        return "quantise (FakeQuantize)"
    if node_type in ELTWISE_TYPES:
        return "Eltwise"
    if node_type in LAYOUT_TYPES:
        return "layout (Transpose/Concat/...)"
    return f"other ({node_type})"


def aggregate(
    before: Iterable[LayerRecord], before_steps: int, after: Iterable[LayerRecord], after_steps: int
) -> list[LayerTime]:
    """Mean time per step of every layer over the steps between two counter snapshots.

    OpenVINO's CPU counters report each layer's mean over every inference since the
    model was compiled (checked on 2026.4: the reported sum falls from the first, slow
    inference's time towards the steady one), so the mean of steps ``before_steps + 1 ..
    after_steps`` is ``(after_steps * after - before_steps * before) / (after_steps -
    before_steps)``.
    """
    earlier = {(r.name, r.node_type, r.exec_type): r.real_us for r in before}
    span = max(1, after_steps - before_steps)
    out = []
    for r in after:
        key = (r.name, r.node_type, r.exec_type)
        us = (after_steps * r.real_us - before_steps * earlier.get(key, 0.0)) / span
        precision = exec_precision(r.exec_type)
        op_class = classify(r.node_type, f"{r.name},{r.fused}", precision)
        out.append(LayerTime(r.name, r.node_type, r.exec_type, op_class, precision, us / 1000.0))
    return out


def summarise(precision: str, layers: list[LayerTime], step_ms: list[float]) -> PrecisionProfile:
    """The per-class sums and int8 leftovers of one precision's `aggregate`."""
    classes: dict[str, float] = {}
    for layer in layers:
        classes[layer.op_class] = classes.get(layer.op_class, 0.0) + layer.ms
    floats = [
        layer
        for layer in layers
        if precision == "int8" and is_matrix(layer.node_type) and layer.precision != "int8"
    ]
    return PrecisionProfile(
        precision=precision,
        steps=len(step_ms),
        step_ms_p50=float(np.median(step_ms)) if step_ms else float("nan"),
        layers_ms=sum(layer.ms for layer in layers),
        classes=dict(sorted(classes.items(), key=lambda kv: -kv[1])),
        float_matrix_layers=sorted(floats, key=lambda layer: -layer.ms),
        layers=layers,
    )


def profile_precision(
    encoder: OpenVINOEncoder, video: np.ndarray, warmup: int
) -> tuple[PrecisionProfile, np.ndarray]:
    """Stream ``video`` (``uint8 [T, H, W, 3]``) from the zero state through ``encoder``
    (compiled with ``PERF_COUNT``); the steps after ``warmup`` are profiled.

    Returns:
        The profile and the features of every step ``[T, N, D]``.
    """
    names = ["cam0"]
    encoder.reset()
    before: list[LayerRecord] = []
    step_ms, features = [], []
    for t, frame in enumerate(video):
        tick = time.perf_counter()
        out = encoder.step(frame[None], names)
        elapsed = (time.perf_counter() - tick) * 1000.0
        features.append(np.asarray(out[0], dtype=np.float32))
        if t + 1 == warmup:
            before = encoder.profiling_info(1)
        if t >= warmup:
            step_ms.append(elapsed)
    layers = aggregate(before, warmup, encoder.profiling_info(1), len(video))
    profile = summarise(encoder.info.precision, layers, step_ms)
    return profile, np.stack(features)


def open_encoder(
    checkpoint: str,
    precision: str,
    *,
    height: int,
    width: int,
    threads: int | None,
    cache_dir: str | None,
    calibration: str | None,
    recipe: Int8Recipe = DEFAULT_RECIPE,
) -> OpenVINOEncoder:
    """An OpenVINO encoder of ``checkpoint`` (its cached ONNX export) with counters on."""
    from rvm_ros.runtime.cache import cache_dir as resolve_cache
    from rvm_ros.runtime.cache import cached_export_of
    from rvm_ros.runtime.onnx.export import read_metadata

    onnx_file = cached_export_of(checkpoint, height, width, cache_dir)
    meta = read_metadata(onnx_file)
    return OpenVINOEncoder(
        onnx_file,
        model_id=meta["model_id"],
        dim=meta["dim"],
        patch_size=meta["patch_size"],
        height=height,
        width=width,
        precision=precision,
        max_batch=1,
        threads=threads,
        cache=resolve_cache(cache_dir),
        calibration=calibration,
        options={"PERF_COUNT": True, "CACHE_DIR": ""},  # a loaded blob lacks fused names
        int8_recipe=recipe,
        reason="profile",
    )


def profile_step(
    checkpoint: str,
    precisions: Sequence[str],
    *,
    height: int,
    width: int,
    frames: int = 12,
    warmup: int = 2,
    threads: int | None = None,
    video: str | None = None,
    calibration: str | None = None,
    cache_dir: str | None = None,
    recipe: Int8Recipe = DEFAULT_RECIPE,
) -> list[PrecisionProfile]:
    """Profile the OpenVINO step of ``checkpoint`` at each precision on the same frames.

    Args:
        checkpoint: checkpoint path or ``random:<variant>`` / ``builtin:default``.
        precisions: ``fp32`` / ``bf16`` / ``int8`` (each compiled in turn).
        height: frame height.
        width: frame width.
        frames: steps streamed (``warmup`` of them untimed).
        warmup: first steps left out of the profile.
        threads: CPU inference threads (default: the usable cores).
        video: stream this video's frames (default: synthetic moving frames).
        calibration: int8 calibration frames (default: the backend's synthetic frames).
        cache_dir: cache of ONNX exports and int8 IRs.
        recipe: the int8 NNCF recipe.
    """
    from rvm_ros.imaging.synthetic import synthetic_frames

    if video:
        from rvm_ros.imaging.frames import load_frames

        clip = load_frames(video, height, width, max_frames=frames)[0]
    else:
        clip = synthetic_frames(frames, 1, height, width, 0)[:, 0]
    out, feats = [], {}
    for precision in precisions:
        encoder = open_encoder(
            checkpoint,
            precision,
            height=height,
            width=width,
            threads=threads,
            cache_dir=cache_dir,
            calibration=calibration,
            recipe=recipe,
        )
        try:
            profile, feats[precision] = profile_precision(encoder, clip, warmup)
        finally:
            encoder.close()
        out.append(profile)
    if "fp32" in feats:
        out = [
            replace(p, cosine_vs_fp32=token_cosine(feats[p.precision], feats["fp32"])) for p in out
        ]
    return out


def token_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-token cosine similarity of two feature arrays ``[..., D]``."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    num = (a64 * b64).sum(-1)
    den = np.maximum(np.linalg.norm(a64, axis=-1) * np.linalg.norm(b64, axis=-1), 1e-12)
    return float((num / den).mean())


def markdown(profiles: Sequence[PrecisionProfile], title: str, top: int = 12) -> str:
    """A markdown section: ms per step by op class and precision, then the int8 leftovers."""
    classes = list(dict.fromkeys(c for p in profiles for c in p.classes))
    head = " | ".join(p.precision for p in profiles)
    lines = [f"### {title}", "", f"| op class | {head} |", "|---" + "|---:" * len(profiles) + "|"]
    for name in classes:
        row = " | ".join(_cell(p.classes.get(name, 0.0), p.layers_ms) for p in profiles)
        lines.append(f"| {name} | {row} |")
    rows = {
        "layers, sum": [f"{p.layers_ms:.2f}" for p in profiles],
        "step p50 (counters on)": [f"{p.step_ms_p50:.2f}" for p in profiles],
        "cosine vs fp32": [
            "" if p.cosine_vs_fp32 is None else f"{p.cosine_vs_fp32:.5f}" for p in profiles
        ],
    }
    for label, cells in rows.items():
        lines.append(f"| **{label}** | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("(ms per step, share of the layers' sum in brackets)")
    for p in profiles:
        if p.precision != "int8":
            continue
        total = sum(layer.ms for layer in p.float_matrix_layers)
        lines += [
            "",
            f"int8 step: {len(p.float_matrix_layers)} matrix layers not in int8, "
            f"{total:.2f} ms per step (slowest {min(top, len(p.float_matrix_layers))}):",
            "",
            "| layer | node type | kernel | ms |",
            "|---|---|---|---:|",
        ]
        for layer in p.float_matrix_layers[:top]:
            lines.append(
                f"| {layer.name} | {layer.node_type} | {layer.exec_type} | {layer.ms:.3f} |"
            )
    return "\n".join(lines) + "\n"


def _cell(ms: float, total: float) -> str:
    return f"{ms:.2f} ({100.0 * ms / total:.0f}%)" if total > 0 else f"{ms:.2f}"


def to_json(profiles: Sequence[PrecisionProfile], meta: dict[str, object]) -> str:
    """The profiles (every layer included) and ``meta`` as indented JSON."""
    return json.dumps({**meta, "profiles": [asdict(p) for p in profiles]}, indent=1) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rvm_ros.bench.openvino_profile",
        description="Per-layer OpenVINO profile of the RVM step, summed by op class.",
    )
    p.add_argument("--checkpoint", default="random:S", help="checkpoint or random:<variant>")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16", "int8"])
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--frames", type=int, default=12, help="steps streamed from the zero state")
    p.add_argument("--warmup", type=int, default=2, help="first steps left out")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--video", default=None, help="video frames (default: synthetic)")
    p.add_argument("--calibration", default=None, help="int8 calibration frames")
    p.add_argument(
        "--int8-recipe",
        default=DEFAULT_RECIPE.key,
        help="int8 NNCF preset and SmoothQuant alpha, <performance|mixed>:<alpha or -1> "
        f"(default {DEFAULT_RECIPE.key})",
    )
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--markdown", metavar="MD", help="write the markdown table here")
    p.add_argument("--json", metavar="OUT", help="write every layer's time here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Profile, print the markdown table, write the requested files; exit code."""
    from rvm_ros.errors import RvmRosError
    from rvm_ros.fsutil import atomic_write

    args = _parser().parse_args(argv)
    if args.frames <= args.warmup or args.warmup < 0:
        print(
            f"error: --frames ({args.frames}) must exceed --warmup ({args.warmup})", file=sys.stderr
        )
        return 2
    try:
        recipe = parse_recipe(args.int8_recipe)
        profiles = profile_step(
            args.checkpoint,
            args.precision,
            height=args.height,
            width=args.width,
            frames=args.frames,
            warmup=args.warmup,
            threads=args.threads,
            video=args.video,
            calibration=args.calibration,
            cache_dir=args.cache_dir,
            recipe=recipe,
        )
    except (RvmRosError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    title = f"{args.checkpoint} at {args.height}x{args.width}, OpenVINO per-layer profile"
    if "int8" in args.precision:
        title += f" (int8 recipe {recipe.key})"
    text = markdown(profiles, title)
    print(text)
    if args.markdown:
        atomic_write(Path(args.markdown), lambda tmp: tmp.write_text(text))
    if args.json:
        meta = {"checkpoint": args.checkpoint, "height": args.height, "width": args.width}
        payload = to_json(profiles, meta)
        atomic_write(Path(args.json), lambda tmp: tmp.write_text(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
