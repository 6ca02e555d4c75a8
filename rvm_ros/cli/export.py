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
    p.add_argument(
        "--force",
        action="store_true",
        help="replace --out (and its sidecar) if it exists, once the new one is complete",
    )
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


# Largest network input side exported (the node's model_height / model_width limit).
MAX_SIDE = 4096


def run(args: argparse.Namespace) -> int:
    """Validate the arguments and export."""
    from pathlib import Path

    from rvm_ros.cli.validate import at_least, frame_sizes, model_patch_size
    from rvm_ros.fsutil import check_output, staged_output
    from rvm_ros.runtime import BackendUnavailable, InputError
    from rvm_ros.runtime.export import export_model
    from rvm_ros.runtime.onnx.export import ExportError

    at_least(args, 1, "max_batch")
    frame_sizes(args, model_patch_size(args.checkpoint), MAX_SIDE)
    out = Path(args.out)
    inputs = [] if str(args.checkpoint).startswith(("random:", "builtin:")) else [args.checkpoint]
    sidecar = out.with_name(out.name + ".json")
    check_output(out, inputs, force=args.force, what="--out")
    if args.format == "engine":
        check_output(sidecar, inputs, force=args.force, what="sidecar")
    built_sidecar: Path | None = None
    staged: Path | None = None
    try:
        # built beside --out, swapped in once exported and checked (rvm_ros.fsutil)
        with staged_output(out, inputs, force=args.force, what="--out") as tmp:
            staged = tmp
            result = export_model(
                args.checkpoint,
                tmp,
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
            built_sidecar = result.sidecar
    except (InputError, BackendUnavailable, ExportError, FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        if staged is not None and (built_sidecar is None or not out.exists()):
            staged.with_name(staged.name + ".json").unlink(missing_ok=True)  # no orphan
    result.path = out
    if built_sidecar is not None:
        built_sidecar.replace(sidecar)
        result.sidecar = sidecar
    if args.summary:
        print(result.verify.summary)
    print(
        f"wrote {result.path} ({result.format}, {result.precision}, {result.model_id}); "
        f"max abs error vs torch {result.verify.max_abs_error:.3g}"
    )
    if result.engine_check is not None:
        print(f"wrote {result.sidecar}; {result.engine_check.describe()}")
    return 0
