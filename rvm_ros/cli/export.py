"""`rvm-ros export`: ONNX of one recurrent step (checked), or a TensorRT engine."""

from __future__ import annotations

import argparse
import sys

from rvm_ros.cli import CliError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``export`` subcommand."""
    p = sub.add_parser(
        "export",
        help="export one recurrent step to ONNX (checked against torch) or a TensorRT engine",
        description=(
            "ONNX graph (frames uint8 [B,H,W,3], state [B,N,D]) -> (features, new_state) with "
            "a dynamic batch axis; checked with onnx.checker, compared with torch through "
            "ONNX Runtime (max abs error printed) and inspected with polygraphy."
        ),
    )
    p.add_argument(
        "--checkpoint", required=True, help="checkpoint (.npz / .safetensors) or random:<variant>"
    )
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--max-batch", type=int, default=8, help="largest batch (cameras)")
    p.add_argument("--format", choices=("onnx", "engine"), default="onnx")
    p.add_argument(
        "--precision",
        choices=("fp32", "fp16", "bf16", "int8"),
        default="fp32",
        help="onnx: fp32 or int8 (dynamic quantization); engine: fp32, fp16 or bf16",
    )
    p.add_argument("--out", required=True, help="output file (.onnx or .plan)")
    p.add_argument(
        "--tolerance", type=float, default=1e-4, help="max abs error allowed (fp32 graph)"
    )
    p.add_argument("--summary", action="store_true", help="print polygraphy's model summary")
    engine = p.add_argument_group(
        "engine",
        "--format engine: build on the target GPU; writes the plan and <out>.json (its sidecar) "
        "only when the engine passes the build check against ONNX Runtime",
    )
    engine.add_argument("--device", default=None, help="CUDA device (default cuda)")
    engine.add_argument(
        "--accept-build-error",
        action="store_true",
        help="write the engine even when it fails the build check (the error is recorded)",
    )
    engine.add_argument(
        "--version-compatible",
        action="store_true",
        help="plan runnable by later TensorRT versions of the same major (can be slower)",
    )
    engine.add_argument(
        "--hardware-compatibility",
        choices=("none", "ampere_plus", "same_compute_capability"),
        default="none",
        help="plan runnable on other GPUs of that level (can be slower)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the arguments and export."""
    from rvm_ros.runtime import BackendUnavailable, InputError
    from rvm_ros.runtime.export import export_model
    from rvm_ros.runtime.onnx.export import ExportError

    for name in ("height", "width", "max_batch"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1")
    try:
        result = export_model(
            args.checkpoint,
            args.out,
            height=args.height,
            width=args.width,
            max_batch=args.max_batch,
            fmt=args.format,
            precision=args.precision,
            tolerance=args.tolerance,
            say=lambda line: print(line, file=sys.stderr, flush=True),
            device=args.device,
            accept_build_error=args.accept_build_error,
            version_compatible=args.version_compatible,
            hardware_compatibility=args.hardware_compatibility,
        )
    except (InputError, BackendUnavailable, ExportError, FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    if args.summary:
        print(result.verify.summary)
    print(
        f"wrote {result.path} ({result.format}, {result.precision}, {result.model_id}); "
        f"max abs error vs torch {result.verify.max_abs_error:.3g}"
    )
    if result.engine_check is not None:
        print(f"wrote {result.sidecar}; {result.engine_check.describe()}")
    return 0
