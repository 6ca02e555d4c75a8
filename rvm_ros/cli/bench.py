"""`rvm-ros bench`: latency, throughput, memory and accuracy of the inference backends."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING

from rvm_ros.cli import CliError

if TYPE_CHECKING:
    from rvm_ros.bench.runtime import Target

BACKEND_CHOICES = ("torch", "onnxruntime", "tensorrt", "openvino", "auto")
PRECISION_CHOICES = ("fp32", "bf16", "fp16", "int8")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bench`` subcommand."""
    p = sub.add_parser(
        "bench",
        help="benchmark inference backends (latency, throughput, memory, accuracy)",
        description=(
            "Time one recurrent step per frame for each backend x precision, each in its own "
            "process after a warm-up, against torch eager float32 measured in the same run. "
            "Writes JSON (--json) and appends a markdown table (--markdown)."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint (.npz / .safetensors) or random:<variant>")
    src.add_argument(
        "--random-variant",
        metavar="VARIANT",
        help="random weights of a named size (tiny, mu, Ti, S, M, B, L, H); no checkpoint needed",
    )
    p.add_argument(
        "--backend",
        nargs="+",
        default=["torch"],
        choices=BACKEND_CHOICES,
        help="backends to measure (default: torch)",
    )
    p.add_argument(
        "--precision",
        nargs="+",
        default=["fp32"],
        choices=PRECISION_CHOICES,
        help="precisions to measure; combinations a backend cannot run are skipped",
    )
    p.add_argument(
        "--height",
        type=int,
        default=None,
        help="frame height (default: the checkpoint's training size, from its model card; "
        "256 when it does not say)",
    )
    p.add_argument("--width", type=int, default=None, help="frame width (default: as for --height)")
    p.add_argument(
        "--cameras",
        type=int,
        nargs="+",
        default=[1],
        help="frames per step (batch); several values measure each in the same run",
    )
    p.add_argument(
        "--video",
        default=None,
        help="stream frames of this video (cosine on real frames); default synthetic frames",
    )
    p.add_argument(
        "--peaks",
        action="store_true",
        help="measure the matmul peak per precision each round; report GFLOP/s and its "
        "fraction of the peak per row",
    )
    p.add_argument("--frames", type=int, default=50, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=1, help="alternate configurations N times")
    p.add_argument("--device", default=None, help="cpu or cuda[:i] (default: best available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--cache-dir", default=None, help="cache of ONNX exports / engines")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="measure in this process instead of one fresh process per configuration "
        "(peak RSS is then the whole process's)",
    )
    p.add_argument("--json", metavar="OUT", help="write the JSON report here")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.add_argument("--markdown", metavar="MD", help="append a markdown table here")
    p.set_defaults(func=run)


def _targets(backends: list[str], precisions: list[str], cameras: list[int]) -> list[Target]:
    from rvm_ros.bench.runtime import Target
    from rvm_ros.runtime.factory import choose_backend

    supported = {
        "torch": {"fp32", "bf16", "fp16"},
        "onnxruntime": {"fp32", "int8"},
        "tensorrt": {"fp32", "fp16", "bf16"},
        "openvino": {"fp32", "bf16", "int8"},
    }
    out: list[Target] = []
    for backend in dict.fromkeys(backends):
        for precision in dict.fromkeys(precisions):
            name = backend
            if backend == "auto":
                name = choose_backend(precision).backend
            if precision in supported[name]:
                out += [Target(name, precision, n) for n in dict.fromkeys(cameras)]
            else:
                print(f"[bench] skipping {name}/{precision}: not supported", file=sys.stderr)
    return out


def run(args: argparse.Namespace) -> int:
    """Validate the arguments, run the benchmark, write the reports."""
    from rvm_ros.bench.runtime import run_bench
    from rvm_ros.bench.runtime_report import append_markdown, markdown_table, write_json
    from rvm_ros.checkpoint.card import model_input_size
    from rvm_ros.cli.validate import at_least, frame_sizes, model_patch_size
    from rvm_ros.runtime import BackendUnavailable, InputError

    if min(args.cameras) < 1:
        raise CliError(f"--cameras must be >= 1, got {min(args.cameras)}")
    if args.video is not None:
        from pathlib import Path

        if not Path(args.video).is_file():
            raise CliError(f"--video {args.video}: no such file")
    at_least(args, 1, "frames", "rounds")
    at_least(args, 0, "warmup")
    checkpoint = args.checkpoint or f"random:{args.random_variant}"
    if args.random_variant:
        from rvm_ros.model import VARIANTS

        if args.random_variant not in VARIANTS:
            raise CliError(
                f"--random-variant {args.random_variant!r} is not one of {', '.join(VARIANTS)}"
            )
    frame_sizes(args, model_patch_size(checkpoint), 4096)  # the node's model size limit
    args.height, args.width = model_input_size(checkpoint, args.height, args.width, (256, 256))
    from rvm_ros.cli.validate import at_most

    # The frames are made (or read) before timing: frames x cameras x H x W x 3 bytes.
    frame_bytes = args.height * args.width * 3 * max(args.cameras)
    at_most(args, 10_000_000, "frames", bytes_each=frame_bytes, hint="measure fewer frames")
    at_most(args, 10_000_000, "warmup", bytes_each=frame_bytes)
    at_most(args, 10_000, "rounds")
    if max(args.cameras) > 64:
        raise CliError(f"--cameras must be at most 64, got {max(args.cameras)}")
    if args.json:
        from rvm_ros.fsutil import check_output

        inputs = [p for p in (args.checkpoint, args.video) if p]
        check_output(args.json, inputs, force=args.force, what="--json")
    targets = _targets(args.backend, args.precision, args.cameras)
    if not targets:
        raise CliError("no backend/precision combination to measure")
    try:
        report = run_bench(
            checkpoint,
            targets,
            height=args.height,
            width=args.width,
            cameras=args.cameras[0],
            frames=args.frames,
            warmup=args.warmup,
            device=args.device,
            threads=args.threads,
            cache_dir=args.cache_dir,
            rounds=args.rounds,
            isolate=not args.in_process,
            video=args.video,
            peaks=args.peaks,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (BackendUnavailable, InputError, FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    command = "rvm-ros " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None
    table = markdown_table(report, command)
    print(table)
    if args.json:
        print(f"[bench] wrote {write_json(report, args.json)}", file=sys.stderr)
    if args.markdown:
        print(f"[bench] appended to {append_markdown(table, args.markdown)}", file=sys.stderr)
    return 0
