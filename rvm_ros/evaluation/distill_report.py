"""``rvm-ros eval-distill``: run every teacher-vs-student measurement, write the report.

The output folder gets ``metrics.json``, ``report.md``, ``cosine.png`` (feature cosine per
streamed frame, each held-out video) and ``pca.png`` (frame | teacher | student, then both
minus each cell's mean over the stream; colours from the teacher's principal directions),
built in a temporary sibling and swapped in complete (:func:`rvm_ros.fsutil.staged_output`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rvm_ros.evaluation import DEFAULT_EVAL_VIDEOS
from rvm_ros.evaluation.distill_pair import (
    Pair,
    cosine_per_frame,
    drift,
    in_teacher_space,
    nn_agreement,
    ping_pong,
    speed,
    stream_features,
    teacher_on_student_grid,
    tracking_signals,
)


@dataclass(frozen=True)
class EvalSettings:
    """What ``eval-distill`` measures.

    Attributes:
        videos: Held-out videos (paths or ``sample:<name>``).
        frames: Streamed frames per video (played forward and backward when shorter).
        backends: Backends timed (``torch``, ``onnxruntime``, ``openvino``).
        repeats: Timed steps per model and backend.
        threads: CPU threads of the timed backends.
        tracking_sequences: Benchmark sequences per split for the tracking signals (0: off).
        reconstruction_clips: Clips per video for masked reconstruction (0: off).
    """

    videos: tuple[str, ...] = DEFAULT_EVAL_VIDEOS
    frames: int = 360
    backends: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
    repeats: int = 30
    threads: int = 1
    tracking_sequences: int = 4
    reconstruction_clips: int = 8


@dataclass
class EvalOutcome:
    """The measurements (``metrics``) and the per-frame curves and picture rows."""

    # Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
    metrics: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    pca_rows: list[np.ndarray] = field(default_factory=list)


def _streams(
    pair: Pair, settings: EvalSettings, outcome: EvalOutcome, log: Callable[[str], None]
) -> None:
    from rvm_ros.evaluation.held_out import read_eval_video

    # Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
    per_video: dict[str, Any] = {}
    for video in settings.videos:
        t_frames = ping_pong(read_eval_video(video, *pair.teacher_size), settings.frames)
        s_frames = ping_pong(read_eval_video(video, *pair.student_size), settings.frames)
        teacher = teacher_on_student_grid(pair, stream_features(pair.teacher, t_frames))
        student = stream_features(pair.student, s_frames)
        cos = cosine_per_frame(teacher, in_teacher_space(pair, student))
        patches = cosine_per_frame(teacher[:, 1:], in_teacher_space(pair, student)[:, 1:])
        outcome.curves[video] = cos
        per_video[video] = {
            "frames": len(cos),
            "mean_cosine": float(cos.mean()),
            "min_cosine": float(cos.min()),
            "patch_mean_cosine": float(patches.mean()),
            "drift": drift(cos),
            "nn_agreement": nn_agreement(teacher, student),
        }
        log(f"{video}: mean feature cosine {cos.mean():.4f} over {len(cos)} frames")
        outcome.pca_rows.extend(_pca_rows(pair, s_frames, teacher, student))
    means = [v["mean_cosine"] for v in per_video.values()]
    outcome.metrics["streaming"] = per_video
    outcome.metrics["mean_cosine"] = float(np.mean(means))
    outcome.metrics["worst_slope_per_100_frames"] = min(
        v["drift"]["slope_per_100_frames"] for v in per_video.values()
    )


def _pca_rows(
    pair: Pair, frames: np.ndarray, teacher: torch.Tensor, student: torch.Tensor, rows: int = 3
) -> list[np.ndarray]:
    """Rows of frame | teacher | student | teacher, student minus their per-cell stream mean.

    Each pair of columns is coloured with one PCA basis fitted on the teacher. The raw
    features are dominated by the position of the cell; removing each cell's mean over the
    stream leaves what moves with the scene.
    """
    import cv2

    from rvm_ros.viz.pca import pca_colors

    gh, gw = pair.student_grid
    projected = in_teacher_space(pair, student)
    t_grid = teacher[:, 1:].reshape(len(teacher), gh, gw, -1).numpy()
    s_grid = projected[:, 1:].reshape(len(projected), gh, gw, -1).numpy()
    t_res, s_res = t_grid - t_grid.mean(0), s_grid - s_grid.mean(0)
    picks = np.linspace(len(frames) // 4, len(frames) - 1, rows).round().astype(int)
    channels = t_grid.shape[-1]
    _, basis = pca_colors(t_grid[picks].reshape(-1, gw, channels))
    _, basis_res = pca_colors(t_res[picks].reshape(-1, gw, channels))
    out = []
    h, w = frames.shape[1:3]
    gap = np.full((h, 4, 3), 255, np.uint8)
    for i in picks:
        cells = [pca_colors(g[i], basis)[0] for g in (t_grid, s_grid)]
        cells += [pca_colors(g[i], basis_res)[0] for g in (t_res, s_res)]
        big = [cv2.resize(c, (w, h), interpolation=cv2.INTER_NEAREST) for c in cells]
        parts = [frames[i]]
        for b in big:
            parts += [gap, b]
        out.append(np.concatenate(parts, axis=1))
    return out


# Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
def _correspondence(pair: Pair, settings: EvalSettings) -> dict[str, Any]:
    from rvm_ros.evaluation.correspondence import correspondence_top1
    from rvm_ros.evaluation.held_out import read_eval_video

    shift = 19
    # Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
    out: dict[str, Any] = {"shift": shift}
    for video in settings.videos:
        row = {}
        for name, model, (h, w) in (
            ("teacher", pair.teacher, pair.teacher_size),
            ("student", pair.student, pair.student_size),
        ):
            frames = read_eval_video(video, h + 2 * shift, w + 2 * shift)
            row[name] = correspondence_top1({name: model}, frames, h, w, shift).accuracy[name]
        out[video] = row
    return out


# Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
def _tracking(pair: Pair, settings: EvalSettings) -> dict[str, Any]:
    from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig
    from rvm_ros.tracking.evaluation.sources import sources_from_files
    from rvm_ros.tracking.evaluation.splits import make_sequences
    from rvm_ros.training.data import resolve_video

    sources = sources_from_files([resolve_video(v) for v in settings.videos], 4)
    cfg = BenchmarkConfig(seed=0, num_sequences=settings.tracking_sequences, num_frames=24)
    # Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
    out: dict[str, Any] = {}
    for split in ("plain", "occluder"):
        seqs = make_sequences(cfg, split, sources)
        out[split] = {
            "teacher": tracking_signals(pair.teacher, pair.teacher_size, seqs),
            "student": tracking_signals(pair.student, pair.student_size, seqs),
        }
    return out


# Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
def _reconstruction(pair: Pair, settings: EvalSettings) -> dict[str, Any]:
    from rvm_ros.evaluation.reconstruction import evaluate_reconstruction

    # Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
    out: dict[str, Any] = {}
    for name, model, (h, w) in (
        ("teacher", pair.teacher, pair.teacher_size),
        ("student", pair.student, pair.student_size),
    ):
        if model.decoder is None:
            out[name] = None
            continue
        rep = evaluate_reconstruction(
            model, settings.videos, settings.reconstruction_clips, h, w, name=model.model_id
        )
        b = rep.overall
        out[name] = {
            "clips": rep.clips,
            "masked_mse": b.model,
            "mean_colour_mse": b.mean_colour,
            "copy_last_mse": b.copy_last,
        }
    return out


def evaluate_pair(
    pair: Pair, settings: EvalSettings, log: Callable[[str], None] = print
) -> EvalOutcome:
    """Run every measurement of teacher vs student (see :class:`EvalSettings`)."""
    outcome = EvalOutcome()
    m = outcome.metrics
    m["teacher"] = {
        "model_id": pair.teacher.model_id,
        "size": list(pair.teacher_size),
        "config": pair.teacher.config.to_dict(),
    }
    m["student"] = {
        "model_id": pair.student.model_id,
        "size": list(pair.student_size),
        "config": pair.student.config.to_dict(),
        "adapter": pair.adapter is not None,
    }
    for name, model in (("teacher", pair.teacher), ("student", pair.student)):
        m[name]["parameters"] = sum(p.numel() for p in model.encoder.parameters()) + sum(
            p.numel() for p in model.core.parameters()
        )
    _streams(pair, settings, outcome, log)
    log("patch correspondence under a known shift ...")
    m["correspondence_top1"] = _correspondence(pair, settings)
    if settings.tracking_sequences:
        log("tracking signals ...")
        m["tracking_signals"] = _tracking(pair, settings)
    if settings.reconstruction_clips:
        log("masked reconstruction ...")
        m["reconstruction"] = _reconstruction(pair, settings)
    if settings.backends:
        log(f"speed: {', '.join(settings.backends)} ...")
        m["speed"] = speed(pair, settings.backends, settings.repeats, settings.threads)
    m["load_average"] = list(os.getloadavg())
    return outcome


def _cosine_png(curves: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, cos in curves.items():
        ax.plot(np.arange(len(cos)), cos, linewidth=1, label=Path(name.split(":")[-1]).name)
    ax.axhline(0.9, color="k", linestyle=":", linewidth=1)
    ax.set_xlabel("streamed frame")
    ax.set_ylabel("feature cosine to teacher")
    ax.set_ylim(min(0.5, min(float(c.min()) for c in curves.values()) - 0.02), 1.0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _pca_png(rows: Sequence[np.ndarray], path: Path) -> None:
    import cv2

    width = max(r.shape[1] for r in rows)
    padded = [
        np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows
    ]
    image = np.concatenate(padded, axis=0)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


# Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
def _streaming_lines(metrics: dict[str, Any]) -> list[str]:
    t, s = metrics["teacher"], metrics["student"]
    lines = [
        "# Distillation: teacher vs student on held-out video",
        "",
        f"- teacher `{t['model_id']}` at {t['size'][0]}x{t['size'][1]}, "
        f"{t['parameters'] / 1e6:.2f} M encoder + core parameters",
        f"- student `{s['model_id']}` at {s['size'][0]}x{s['size'][1]}, "
        f"{s['parameters'] / 1e6:.2f} M" + (" (+ linear adapter)" if s["adapter"] else ""),
        f"- load average during the run: {', '.join(f'{x:.2f}' for x in metrics['load_average'])}",
        "",
        "| video | frames | mean cosine | min | patches only | slope / 100 frames | "
        "first 50 | last 50 | NN agreement gap 1 / 4 / 12 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for video, v in metrics["streaming"].items():
        d, a = v["drift"], v["nn_agreement"]
        agree = " / ".join(f"{a[k]:.3f}" for k in sorted(a, key=lambda k: int(k.split("_")[1])))
        lines.append(
            f"| {video} | {v['frames']} | {v['mean_cosine']:.4f} | {v['min_cosine']:.4f} | "
            f"{v['patch_mean_cosine']:.4f} | {d['slope_per_100_frames']:+.4f} | "
            f"{d['first_50_mean']:.4f} | {d['last_50_mean']:.4f} | {agree} |"
        )
    return lines


# Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
def _matching_lines(metrics: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    corr = metrics.get("correspondence_top1", {})
    if corr:
        lines += [
            "",
            f"Patch correspondence top-1 under a {corr['shift']}-px shift:",
            "",
            "| video | teacher | student |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {k} | {v['teacher']:.3f} | {v['student']:.3f} |"
            for k, v in corr.items()
            if k != "shift"
        ]
    track = metrics.get("tracking_signals", {})
    if track:
        lines += [
            "",
            "Tracking-benchmark feature signals (held-out sources):",
            "",
            "| split | model | best cell within 1, gap 1 / 4 / 12 | AUC true vs drifted |",
            "|---|---|---|---:|",
        ]
        for split, models in track.items():
            for name, sig in models.items():
                cells = " / ".join(
                    f"{sig.get(f'best_cell_gap_{g}', float('nan')):.3f}" for g in (1, 4, 12)
                )
                lines.append(f"| {split} | {name} | {cells} | {sig.get('auc', float('nan')):.3f} |")
    return lines


# Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
def _cost_lines(metrics: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    rec = metrics.get("reconstruction", {})
    if rec:
        lines += [
            "",
            "Masked reconstruction (95 % masked, held-out clips):",
            "",
            "| model | masked MSE | mean colour | copy last |",
            "|---|---:|---:|---:|",
        ]
        for name, r in rec.items():
            lines.append(
                f"| {name} | no decoder | | |"
                if r is None
                else f"| {name} | {r['masked_mse']:.5f} | {r['mean_colour_mse']:.5f} | "
                f"{r['copy_last_mse']:.5f} |"
            )
    sp = metrics.get("speed", {})
    if sp:
        lines += [
            "",
            "Step time (batch 1, fp32, median, alternated in one run):",
            "",
            "| backend | teacher ms | student ms | student / teacher |",
            "|---|---:|---:|---:|",
        ]
        for backend, r in sp.items():
            lines.append(
                f"| {backend} | {r['error']} | | |"
                if "error" in r
                else f"| {backend} | {r['teacher_ms']:.2f} | {r['student_ms']:.2f} | "
                f"{r['ratio']:.3f}x |"
            )
    return lines


# Any: the metrics are a JSON tree (nested per video / split / model) read back by key.
def markdown(metrics: dict[str, Any]) -> str:
    """The report as markdown tables."""
    lines = [*_streaming_lines(metrics), *_matching_lines(metrics), *_cost_lines(metrics)]
    lines += [
        "",
        "![feature cosine per frame](cosine.png)",
        "",
        "![PCA: frame | teacher | student | both minus the per-cell stream mean](pca.png)",
        "",
    ]
    return "\n".join(lines)


def write_report(outcome: EvalOutcome, folder: Path) -> None:
    """Write ``metrics.json``, ``report.md``, ``cosine.png`` and ``pca.png`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    curves = {k: v.tolist() for k, v in outcome.curves.items()}
    data = dict(outcome.metrics) | {"cosine_per_frame": curves}
    (folder / "metrics.json").write_text(json.dumps(data, indent=2) + "\n")
    (folder / "report.md").write_text(markdown(outcome.metrics))
    _cosine_png(outcome.curves, folder / "cosine.png")
    if outcome.pca_rows:
        _pca_png(outcome.pca_rows, folder / "pca.png")
