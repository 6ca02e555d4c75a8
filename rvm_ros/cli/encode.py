"""`rvm-ros encode`: features of a video or `.npy` frames, frame by frame from the zero state."""

from __future__ import annotations

import argparse
from pathlib import Path

from rvm_ros.cli import CliError
from rvm_ros.errors import RvmRosError

# Largest frame side encode resizes to (far above any camera the model is used with).
MAX_SIDE = 8192


def _check_memory(args: argparse.Namespace, dim: int, patch: int) -> None:
    """Refuse a run whose frames and features would not fit, before allocating them."""
    from rvm_ros.fsutil import available_memory
    from rvm_ros.imaging.frames import frames_shape

    b, t, h, w = frames_shape(args.input, args.max_frames)
    if args.height is not None:
        h, w = args.height, args.width
    tokens = 1 + (h // patch) * (w // patch)
    need = b * t * (h * w * 3 + tokens * dim * 4 * 2)  # frames, features (+ their stack)
    avail = available_memory()
    if avail is not None and need > avail // 2:
        raise CliError(
            f"encoding {b}x{t} frames of {h}x{w} needs about {need / 2**30:.1f} GiB, more than "
            f"half of the {avail / 2**30:.1f} GiB available; use --max-frames or a smaller size"
        )


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from rvm_ros.checkpoint.card import model_input_size, trained_size
    from rvm_ros.checkpoint.errors import CheckpointError
    from rvm_ros.checkpoint.load import load_model
    from rvm_ros.cli.validate import at_least, frame_sizes, model_patch_size
    from rvm_ros.fsutil import check_output, staged_output
    from rvm_ros.imaging.frames import load_frames
    from rvm_ros.imaging.video import FrameError

    out = Path(args.output)
    if out.suffix != ".npy":
        raise CliError(f"--output must end in .npy, got {out}")
    if (args.height is None) != (args.width is None):
        raise CliError("give both --height and --width, or neither")
    if args.height is not None or trained_size(args.checkpoint) is not None:
        # unset: the size the model card records; another size warns once, naming both
        args.height, args.width = model_input_size(args.checkpoint, args.height, args.width, (0, 0))
    frame_sizes(args, model_patch_size(args.checkpoint), MAX_SIDE)
    at_least(args, 1, "max_frames")
    inputs = [args.input, *([] if args.checkpoint.startswith("random:") else [args.checkpoint])]
    check_output(out, inputs, force=args.force, what="--output")  # before any work
    try:
        model = load_model(args.checkpoint)  # float32 CPU; the runtime converts / exports it
    except (CheckpointError, ValueError) as exc:
        raise CliError(f"cannot load checkpoint {args.checkpoint}: {exc}") from exc
    try:
        _check_memory(args, model.config.dim, model.config.patch_size)
        frames = load_frames(
            args.input,
            args.height,
            args.width,
            args.max_frames,
            patch_size=model.config.patch_size,
            strict=args.strict,
        )
    except FrameError as exc:
        if exc.cause == "video_truncated":  # --strict: a damaged input, exit 1
            raise
        raise CliError(str(exc)) from exc
    from rvm_ros.runtime import BackendUnavailable, InputError, create_encoder, encode_video

    b, _, h, w, _ = frames.shape
    try:
        encoder = create_encoder(
            model, args.backend, args.precision, args.device, h, w, max_batch=b
        )
    except (BackendUnavailable, InputError) as exc:
        raise CliError(str(exc)) from exc
    features = encode_video(encoder, frames)  # [B, T, N, D]
    bad = int(np.count_nonzero(~np.isfinite(features)))
    if bad:  # never save NaN features as if they were a result
        raise RvmRosError(
            f"the model gave {bad} non-finite feature values ({model.model_id}, "
            f"{encoder.info.backend} {encoder.info.precision}); nothing written",
            cause="non_finite_output",
        )
    # written beside --output and swapped in when complete (rvm_ros.fsutil)
    with staged_output(out, inputs, force=args.force, what="--output") as tmp:
        np.save(tmp, features)
    b, t, n, d = features.shape
    info = encoder.info
    print(
        f"wrote {out}: features [B={b}, T={t}, N={n}, D={d}] float32 ({model.model_id}, "
        f"{info.backend} {info.precision} on {info.device})"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``encode``."""
    p = sub.add_parser(
        "encode",
        help="features of a video / .npy frames, frame by frame",
        description="Run RVM over a video file or a .npy of uint8 frames [T, H, W, 3] or "
        "[B, T, H, W, 3], one frame per step from the zero state, and save float32 "
        "features [B, T, 1+h*w, D] (token 0 = CLS).",
    )
    p.add_argument("--checkpoint", required=True, help=".npz, .safetensors or random:<variant>")
    p.add_argument("--input", required=True, help="video file or .npy frames")
    p.add_argument("--output", required=True, help="features .npy to write")
    p.add_argument(
        "--height",
        type=int,
        default=None,
        help="resize frames to this height (default: the checkpoint's training size from "
        "its model card; frames as they are when the card does not say)",
    )
    p.add_argument("--width", type=int, default=None, help="resize frames to this width")
    p.add_argument("--max-frames", type=int, default=None, help="encode at most this many")
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "tensorrt", "openvino", "auto"),
        default="torch",
        help="inference backend (rvm_ros.runtime)",
    )
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16", "int8"), default="fp32")
    p.add_argument("--device", default=None, help="cpu or cuda[:i] (default: the backend's)")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace OUTPUT if it exists (once the new file is complete; never an input)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="a video with fewer frames than its container lists is an error (exit 1)",
    )
    p.set_defaults(func=_run)
