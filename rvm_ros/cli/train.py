"""`rvm-ros train`: masked-reconstruction pre-training / fine-tuning (one process or torchrun)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rvm_ros.cli.run_config import add_config_arguments, add_stop_arguments


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.cli.run_config import is_main_rank, load_run_config
    from rvm_ros.cli.validate import at_least
    from rvm_ros.training import load_config, train

    at_least(args, 1, "stop_at")
    cfg = load_run_config(load_config, args, ("init", "out_dir"))
    result = train(cfg, stop_at=args.stop_at, force=args.force)
    if is_main_rank():
        print(
            f"step {result.step}/{cfg.steps}: loss {result.final_loss:.5f}; checkpoint "
            f"{result.checkpoint} ({result.train_seconds / 60:.1f} min of training)"
        )
    return 0


class _Intermixed(argparse.ArgumentParser):
    """Options may stand between the ``KEY=VALUE`` overrides (``a=1 --stop-at 5 b=2``)."""

    _inner = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._inner:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``train``."""
    p = sub.add_parser(
        "train",
        help="masked-reconstruction pre-training or fine-tuning (docs/TRAINING.md)",
        description="Train RVM with the paper's asymmetric masked-reconstruction objective "
        "on videos, rosbag2 image topics, still images under synthetic motion and "
        "procedural scenes. The run folder gets config.yaml (resolved), metrics.jsonl, "
        "loss.png and .safetensors checkpoints; starting again in the same folder resumes "
        "exactly. Runs under `torchrun --nproc_per_node N -m rvm_ros.cli train ...` as "
        "DDP (NCCL on GPUs, gloo on CPUs).",
    )
    p.__class__ = _Intermixed
    add_config_arguments(p, "steps=2000 optim.lr=3e-4 data.bags=[a,b]")
    p.add_argument("--init", default=None, help="start from this .npz / .safetensors (fine-tune)")
    p.add_argument("--out-dir", default=None, help="run folder (same as out_dir=...)")
    add_stop_arguments(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="start a run in an existing folder that holds no run to resume",
    )
    p.set_defaults(func=_run)
