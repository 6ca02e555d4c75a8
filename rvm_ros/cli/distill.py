"""`rvm-ros distill`: a small student trained to stream the features of a teacher checkpoint."""

from __future__ import annotations

import argparse

from rvm_ros.cli.run_config import add_config_arguments, add_stop_arguments


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.cli.run_config import is_main_rank, load_run_config
    from rvm_ros.cli.validate import at_least
    from rvm_ros.training.distill import distill
    from rvm_ros.training.distill_config import load_distill_config

    at_least(args, 1, "stop_at")
    cfg = load_run_config(load_distill_config, args, ("teacher", "student", "out_dir"))
    result = distill(cfg, stop_at=args.stop_at)
    if is_main_rank():
        print(
            f"step {result.step}/{cfg.steps}: loss {result.final_loss:.5f}, feature cosine "
            f"{result.final_cosine:.4f}; student {result.checkpoint} "
            f"({result.train_seconds / 60:.1f} min of distillation)"
        )
        if result.teacher_centred:
            print(
                "the teacher publishes centred features and the student learnt its state: "
                "give the student its own centre with `rvm-ros fit-center --checkpoint "
                f"{result.checkpoint} --out STUDENT.safetensors` (docs/TRAINING.md)"
            )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``distill``."""
    p = sub.add_parser(
        "distill",
        help="distil a teacher checkpoint into a small, fast student (docs/TRAINING.md)",
        description="Train a student RVM to reproduce a teacher's per-frame streaming "
        "features on videos, rosbag2 image topics, stills under synthetic motion and "
        "procedural scenes (the data sources of `rvm-ros train`): both models stream the "
        "same frames, each from its own state. The run folder gets config.yaml, "
        "metrics.jsonl, loss.png and .safetensors student checkpoints; starting again in "
        "the same folder resumes exactly. Runs under `torchrun --nproc_per_node N -m "
        "rvm_ros.cli distill ...` as DDP.",
    )
    add_config_arguments(p, "steps=2000 data.bags=[a,b] student_height=96")
    p.add_argument("--teacher", default=None, help="teacher checkpoint (same as teacher=...)")
    p.add_argument(
        "--student",
        default=None,
        help="student: a variant (student192, student128, tiny, ...), custom (model.* "
        "sizes), a .yaml with a model section, or a checkpoint to continue from",
    )
    p.add_argument("--out-dir", default=None, help="run folder (same as out_dir=...)")
    add_stop_arguments(p)
    p.set_defaults(func=_run)
