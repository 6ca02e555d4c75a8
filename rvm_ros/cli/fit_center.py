"""`rvm-ros fit-center`: give a checkpoint a feature centre fitted on training data."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from rvm_ros.cli import CliError

#: Without --config: the shipped model's training data (config/train_default.yaml).
DEFAULT_DATA = (
    "data.videos=[sample:bikes.mp4]",
    "data.sample_images=true",
    "data.procedural=1.0",
    "data.still_weight=2.0",
)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rvm_ros.checkpoint import load_model, save_safetensors
    from rvm_ros.checkpoint.card import model_input_size, read_card
    from rvm_ros.cli.validate import at_least
    from rvm_ros.fsutil import staged_output
    from rvm_ros.training.center import CenterFit, fit_center, sequence_data, with_center
    from rvm_ros.training.config import load_config
    from rvm_ros.training.data import ClipDataset

    at_least(args, 1, "clips", "frames")
    at_least(args, 0, "warmup")
    if args.warmup >= args.frames:
        raise CliError(f"--warmup {args.warmup} must be below --frames {args.frames}")
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise CliError(f"--out must end in .safetensors, got {out}")
    defaults = [] if args.config else list(DEFAULT_DATA)
    cfg = load_config(args.config, [*defaults, *args.overrides])
    fit = CenterFit(clips=args.clips, frames=args.frames, warmup=args.warmup, seed=args.seed)
    model = load_model(args.checkpoint)
    height, width = model_input_size(args.checkpoint, None, None, (cfg.data.height, cfg.data.width))
    grid = model.config.grid(height, width)
    data = replace(sequence_data(cfg.data, fit), height=height, width=width, workers=0)
    dataset = ClipDataset(data, fit.seed, model.config.patch_size)
    bar = tqdm(total=fit.clips, unit="seq", disable=None, file=sys.stderr, desc="fitting")

    def progress(done: int) -> None:
        bar.update(done - bar.n)

    table = fit_center(model, dataset, fit, progress=progress)
    bar.close()
    centred = with_center(model, table, grid)
    card = read_card(args.checkpoint)
    note = (
        f"feature centre: mean state of {fit.clips} training sequences of {fit.frames} frames "
        f"at {height}x{width} (steps {fit.warmup}.., seed {fit.seed}; rvm-ros fit-center)"
    )
    card = replace(card, notes=f"{card.notes}; {note}" if card.notes else note)
    inputs = [args.checkpoint, *([args.config] if args.config else [])]
    with staged_output(out, inputs, force=args.force, what="--out") as tmp:
        save_safetensors(centred.state_dict(), centred.config, tmp, card=card)
    share = float(table[1:].pow(2).sum(-1).mean())
    print(f"wrote {out}: feature centre for a {grid[0]}x{grid[1]} grid (mean |c|^2 {share:.3g})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fit-center``."""
    p = sub.add_parser(
        "fit-center",
        help="give a checkpoint a feature centre (per-cell mean state) fitted on training data",
        description="Run the checkpoint over training sequences (the data section of a "
        "training config: videos, bags, images, generated scenes), average the recurrent "
        "state of every token after a warm-up, and write a copy of the checkpoint whose "
        "published features are the state minus that centre: the component of the features "
        "that depends on the cell position alone is removed (docs/TRAINING.md, 'Features "
        "that follow content'). The state, the recurrence and the reconstruction are "
        "unchanged. The fit uses the checkpoint's trained input size.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint (.safetensors, .npz, ...)")
    p.add_argument(
        "--config",
        default=None,
        help="training config whose data section gives the sequences (default: the "
        "training defaults: bikes.mp4, scikit-image stills, generated scenes)",
    )
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. data.bags=[a.mcap]")
    p.add_argument("--clips", type=int, default=96, help="training sequences (default 96)")
    p.add_argument("--frames", type=int, default=16, help="frames per sequence (default 16)")
    p.add_argument(
        "--warmup", type=int, default=4, help="leading steps left out of the mean (default 4)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sequences (default 0)")
    p.add_argument("--out", required=True, help="checkpoint to write (.safetensors)")
    p.add_argument(
        "--force", action="store_true", help="replace --out if it exists (never the input)"
    )
    p.set_defaults(func=_run)
