"""`rvm-ros encode`: features of a video or `.npy` frames, frame by frame from the zero state."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rvm_ros.cli import CliError


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from rvm_ros.checkpoint.errors import CheckpointError
    from rvm_ros.checkpoint.load import load_model
    from rvm_ros.imaging.video import FrameError, load_frames

    out = Path(args.output)
    if out.suffix != ".npy":
        raise CliError(f"--output must end in .npy, got {out}")
    if (args.height is None) != (args.width is None):
        raise CliError("give both --height and --width, or neither")
    for name in ("height", "width"):
        value = getattr(args, name)
        if value is not None and (value <= 0 or value % 16):
            raise CliError(f"--{name} must be a positive multiple of 16, got {value}")
    if args.max_frames is not None and args.max_frames < 1:
        raise CliError(f"--max-frames must be >= 1, got {args.max_frames}")
    try:
        model = load_model(args.checkpoint)  # float32 CPU; the runtime converts / exports it
    except (CheckpointError, ValueError) as exc:
        raise CliError(f"cannot load checkpoint {args.checkpoint}: {exc}") from exc
    try:
        frames = load_frames(
            args.input,
            args.height,
            args.width,
            args.max_frames,
            patch_size=model.config.patch_size,
        )
    except FrameError as exc:
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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.npy")
    try:
        np.save(tmp, features)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
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
    p.add_argument("--height", type=int, default=None, help="resize frames to this height")
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
    p.set_defaults(func=_run)
