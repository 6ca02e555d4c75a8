"""Training and evaluating a planning head on token samples (``rvm-ros train-head`` /
``eval-head``): split by drive, fit, score against the past-pose baselines, save.

Head checkpoints are safetensors files whose metadata holds the
:class:`~rvm_ros.heads.HeadConfig` (``head_config``) and how the tokens were made
(``head_meta``: token pooling, window use, past poses); nothing is pickled. Under
``torchrun`` every process trains on its share (DDP, gloo) and rank 0 writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypedDict

import torch

from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import atomic_write
from rvm_ros.heads import (
    FitConfig,
    HeadConfig,
    HeadSamples,
    PlanningHead,
    constant_turn_rate,
    constant_velocity,
    fit_head,
    predict,
    trajectory_metrics,
)

__all__ = [
    "HeadError",
    "evaluate_head",
    "load_head",
    "save_head",
    "setup_distributed",
    "train_head",
]

CONFIG_KEY = "head_config"
META_KEY = "head_meta"
SOURCE = "scene"
#: Seconds between the last past pose and now (``rvm_ros.datasets.head_samples.PAST_S``).
LAST_PAST_DT = 0.1


class HeadError(RvmRosError):
    """A head checkpoint that cannot be read, or samples a head cannot use."""

    cause = "invalid_head"


def setup_distributed() -> tuple[int, int]:
    """Join the ``torchrun`` process group (gloo) if launched by it; ``(rank, world)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    if torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


#: ``{"head" | "constant_velocity" | "constant_turn_rate": trajectory_metrics(...)}``.
HeadMetrics = dict[str, dict[str, dict[str, float]]]


class HeadReport(TypedDict):
    """What :func:`train_head` returns (written as the head's JSON report)."""

    train_samples: int
    val_samples: int
    losses: list[float]
    fit: dict[str, object]
    val: HeadMetrics
    rank: int


def save_head(path: Path, head: PlanningHead, meta: Mapping[str, object]) -> None:
    """Write ``head`` (weights, config and ``meta``) to ``path`` atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    metadata = {CONFIG_KEY: head.config.to_json(), META_KEY: json.dumps(meta, sort_keys=True)}
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


# Any: the JSON metadata the caller of save_head wrote (pool, window, use_past, ...).
def load_head(path: Path | str) -> tuple[PlanningHead, dict[str, Any]]:
    """A head and its metadata from :func:`save_head`'s file.

    Raises:
        HeadError: Not a head checkpoint.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise HeadError(f"{path}: not a readable head checkpoint ({exc})") from None
    if CONFIG_KEY not in meta:
        raise HeadError(f"{path}: no '{CONFIG_KEY}' metadata; not a planning-head checkpoint")
    head = PlanningHead(HeadConfig.from_json(meta[CONFIG_KEY]))
    head.load_state_dict(state)
    head.eval()
    return head, json.loads(meta.get(META_KEY, "{}"))


def _split(samples: HeadSamples, val_drives: int) -> tuple[torch.Tensor, torch.Tensor]:
    drives = sorted(set(samples.drive.tolist()))
    if val_drives <= 0 or len(drives) <= val_drives:
        raise HeadError(
            f"need more than {val_drives} drive(s) to hold out {val_drives} for validation, "
            f"got {len(drives)} (more bags, or --val-drives 0 is not allowed)"
        )
    val = torch.isin(samples.drive, torch.tensor(drives[-val_drives:]))
    return ~val, val


def evaluate_head(
    head: PlanningHead, samples: HeadSamples, use_past: bool, window: int, source: str = SOURCE
) -> HeadMetrics:
    """The head's metrics on ``samples``, with constant velocity / turn rate beside it."""
    cfg = head.config
    if samples.horizons_s != cfg.horizons_s:
        raise HeadError(f"samples have horizons {samples.horizons_s}, head {cfg.horizons_s}")
    pred = predict(head, samples.batch(source if cfg.token_dim else None, window, use_past))
    out = {"head": trajectory_metrics(pred, samples.target, cfg.horizons_s, samples.labels)}
    for name, fn in (
        ("constant_velocity", constant_velocity),
        ("constant_turn_rate", constant_turn_rate),
    ):
        base = fn(samples.past, LAST_PAST_DT, cfg.horizons_s)
        out[name] = trajectory_metrics(base, samples.target, cfg.horizons_s, samples.labels)
    return out


def train_head(
    samples: HeadSamples,
    out: Path,
    fit: FitConfig,
    use_past: bool = False,
    window: int = 1,
    val_drives: int = 1,
    meta: Mapping[str, object] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> HeadReport:
    """Fit a head on all drives but the last ``val_drives``, evaluate on those, save.

    Returns:
        ``{"train_samples", "val_samples", "losses", "val": evaluate_head(...)}``.
    """
    if len(samples) == 0:
        raise HeadError("no samples: the poses cover no step's past and future")
    train, val = _split(samples, val_drives)
    tok = samples.tokens[SOURCE]
    cfg = HeadConfig(
        token_dim=int(tok.shape[-1]),
        max_tokens=int(tok.shape[2]),
        max_cameras=int(tok.shape[1]),
        horizons_s=samples.horizons_s,
        past_poses=int(samples.past.shape[1]) if use_past else 0,
        window=window,
    )
    torch.manual_seed(fit.seed)
    head = PlanningHead(cfg)
    rank, _world = setup_distributed()
    losses = fit_head(head, samples.subset(train).batch(SOURCE, window, use_past), fit, progress)
    report: HeadReport = {
        "train_samples": int(train.sum()),
        "val_samples": int(val.sum()),
        "losses": losses,
        "fit": asdict(fit),
        "val": evaluate_head(head, samples.subset(val), use_past, window),
        "rank": rank,
    }
    if rank == 0:
        save_head(out, head, {**(meta or {}), "use_past": use_past, "window": window})
    return report
