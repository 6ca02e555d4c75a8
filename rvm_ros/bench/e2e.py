"""``rvm-ros e2e-table``: one planning head, one data set, every token source, one run.

For each drive (a bag with images and ego poses, e.g. from ``rvm-ros make-street``) the
token sources are computed from the same frames (:mod:`rvm_ros.datasets.drive_tokens`),
once per weights (the given checkpoint and, with ``random_weights``, the same architecture
with random weights), cached per bag. The drives are split by drive (the last quarter
are the test drives), and the same :class:`~rvm_ros.heads.PlanningHead` configuration is
trained with the same settings and seed on each source:

* node tokens (the recurrent core's output), per-frame encoder tokens, per-frame tokens
  with a learned temporal aggregator over ``window`` frames, raw-pixel patches;
* optionally the node tokens with past poses too;
* baselines: constant velocity and constant turn rate from the past poses, and the head
  on past poses only (no image).

Metrics: ADE / FDE at each horizon, all test samples and per segment (straight, turning,
stopping; :func:`rvm_ros.heads.segment_labels`).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from rvm_ros.datasets.drive_tokens import DriveTokens, extract_drive_tokens
from rvm_ros.datasets.head_samples import PAST_S, build_samples
from rvm_ros.datasets.scene_tokens import PoseTrack, read_pose_track
from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import atomic_write
from rvm_ros.heads import (
    FitConfig,
    HeadConfig,
    PlanningHead,
    constant_turn_rate,
    constant_velocity,
    fit_head,
    predict,
    trajectory_metrics,
)
from rvm_ros.heads.samples import HeadSamples, concat_samples
from rvm_ros.model import RVM

__all__ = ["E2ESettings", "HeadRow", "e2e_markdown", "run_e2e", "sizes_markdown"]


class E2EError(RvmRosError):
    """The comparison cannot run (too few drives, no samples)."""

    cause = "invalid_argument"
    exit_code = 2


@dataclass(frozen=True)
class E2ESettings:
    """What :func:`run_e2e` compares.

    Attributes:
        bags: The drives.
        checkpoint: RVM weights (``builtin:default``: the shipped model).
        random_weights: Also the same architecture with random weights.
        size: Network input ``(height, width)``.
        pool: Token grid pooling (same for every source).
        pose_topic: Ego poses (``nav_msgs/Odometry`` or ``PoseStamped``).
        test_drives: Drives held out for testing (0: a quarter, at least one).
        window: Frames of the temporal aggregator.
        horizons_s: Prediction horizons.
        fit: Training settings (same for every head).
        with_past: Add a row of node tokens + past poses.
        cache: Folder for extracted tokens (None: no cache).
        threads: torch threads.
        cameras: Cameras to use (None: every camera of the bags).
        weights: ``both``, ``trained`` or ``random``: which weights' rows to run (the
            baselines always run; halves of one comparison can run in two processes).
    """

    bags: tuple[Path, ...]
    checkpoint: str = "builtin:default"
    random_weights: bool = True
    size: tuple[int, int] = (128, 128)
    pool: int = 2
    pose_topic: str = "/odom"
    test_drives: int = 0
    window: int = 4
    horizons_s: tuple[float, ...] = (0.5, 1.0, 2.0)
    fit: FitConfig = field(default_factory=FitConfig)
    with_past: bool = True
    cache: Path | None = None
    threads: int = 1
    cameras: tuple[str, ...] | None = None
    weights: str = "both"


class _RowFields(TypedDict):
    row: str
    source: str
    window: int
    past_poses: bool
    train_s: float
    metrics: dict[str, dict[str, float]]


class HeadRow(_RowFields, total=False):
    """One row of the comparison: a head (or a baseline) and its trajectory metrics.

    ``final_loss`` is set for trained heads, ``weights`` (the model id) for token rows.
    """

    final_loss: float
    weights: str


def _cache_path(s: E2ESettings, bag: Path, model_id: str) -> Path | None:
    if s.cache is None:
        return None
    cams = "-" + "+".join(s.cameras) if s.cameras else ""
    name = f"{bag.name}-{model_id}-{s.size[0]}x{s.size[1]}-p{s.pool}{cams}.npz"
    return s.cache / name


def _load_tokens(
    s: E2ESettings, bag: Path, model: RVM, tick: Callable[[int], object]
) -> tuple[np.ndarray, dict[str, np.ndarray], PoseTrack]:
    path = _cache_path(s, bag, model.model_id)
    if path is not None and path.is_file():
        with np.load(path) as z:
            poses = read_pose_track(bag, s.pose_topic)
            if poses is None:
                raise E2EError(f"{bag}: no pose topic {s.pose_topic}")
            return z["stamps"], {k[4:]: z[k] for k in z.files if k.startswith("tok_")}, poses
    d: DriveTokens = extract_drive_tokens(bag, model, s.size, s.pose_topic, s.cameras, s.pool, tick)
    if path is not None:
        # Any: numpy's stub types np.savez's **kwds against its allow_pickle: bool.
        arrays: dict[str, Any] = {f"tok_{k}": v for k, v in d.tokens.items()}

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:  # a file object: np.savez adds no ".npz" to the name
                np.savez(fh, stamps=d.stamps_ns, **arrays)

        atomic_write(path, write)
    return d.stamps_ns, d.tokens, d.poses


def _samples(s: E2ESettings, model: RVM, progress: bool) -> HeadSamples:
    from tqdm import tqdm

    # Without progress the bar is disabled: it shows nothing and its update does nothing.
    bar = tqdm(desc=f"tokens {model.model_id}", unit="step", leave=False, disable=not progress)
    parts = []
    try:
        for i, bag in enumerate(s.bags):
            stamps, tokens, poses = _load_tokens(s, bag, model, bar.update)
            parts.append(build_samples(stamps, tokens, poses, s.horizons_s, s.window, i))
    finally:
        bar.close()
    return concat_samples(parts)


def _head_row(
    name: str,
    samples: HeadSamples,
    train: torch.Tensor,
    test: torch.Tensor,
    s: E2ESettings,
    source: str | None,
    window: int,
    past: bool,
) -> HeadRow:
    tok = samples.tokens[source] if source is not None else None
    cfg = HeadConfig(
        token_dim=int(tok.shape[-1]) if tok is not None else 0,
        max_tokens=int(tok.shape[2]) if tok is not None else 1,
        max_cameras=int(tok.shape[1]) if tok is not None else 1,
        horizons_s=s.horizons_s,
        past_poses=len(PAST_S) if past else 0,
        window=window,
    )
    torch.manual_seed(s.fit.seed)
    head = PlanningHead(cfg)
    t0 = time.perf_counter()
    tr, te = samples.subset(train), samples.subset(test)
    losses = fit_head(head, tr.batch(source, window, past), s.fit)
    train_s = time.perf_counter() - t0
    pred = predict(head, te.batch(source, window, past))
    metrics = trajectory_metrics(pred, te.target, s.horizons_s, te.labels)
    return {
        "row": name,
        "source": source or "",
        "window": window,
        "past_poses": past,
        "train_s": round(train_s, 1),
        "final_loss": losses[-1],
        "metrics": metrics,
    }


def _baseline_rows(
    samples: HeadSamples,
    test: torch.Tensor,
    s: E2ESettings,
) -> list[HeadRow]:
    te = samples.subset(test)
    dt = -PAST_S[-1]
    rows: list[HeadRow] = []
    for name, fn in (
        ("constant velocity (past poses)", constant_velocity),
        ("constant turn rate and velocity (past poses)", constant_turn_rate),
    ):
        pred = fn(te.past, dt, s.horizons_s)
        rows.append(
            {
                "row": name,
                "source": "",
                "window": 0,
                "past_poses": True,
                "train_s": 0.0,
                "metrics": trajectory_metrics(pred, te.target, s.horizons_s, te.labels),
            }
        )
    return rows


def _split(samples: HeadSamples, s: E2ESettings) -> tuple[torch.Tensor, torch.Tensor]:
    drives = len(s.bags)
    n_test = s.test_drives or max(1, drives // 4)
    if drives - n_test < 1:
        raise E2EError(f"need at least 2 drives (one to train, one to test), got {drives}")
    test = samples.drive >= drives - n_test
    return ~test, test


def run_e2e(
    s: E2ESettings,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    # Any: JSON-ready result records (settings, rows, nested metrics) read back by key.
) -> dict[str, Any]:
    """Extract tokens, train every head, evaluate; returns the results (JSON-ready)."""
    from rvm_ros.checkpoint.load import load_model
    from rvm_ros.checkpoint.random import randomize_

    torch.set_num_threads(s.threads)
    say = log or (lambda _message: None)
    t_start = time.perf_counter()
    weights = []
    if s.weights in ("both", "trained"):
        weights.append(("trained", load_model(s.checkpoint)))
    if s.random_weights and s.weights in ("both", "random"):
        rand = randomize_(load_model(s.checkpoint), 0)
        rand.model_id = f"{rand.config.variant}-random0"  # its own token cache
        weights.append(("random", rand))
    if not weights:
        raise E2EError("nothing to compare: --weights random needs the random-weights rows")
    rows: list[HeadRow] = []
    extract_s: dict[str, float] = {}
    base: HeadSamples | None = None
    for label, model in weights:
        model.eval()
        t0 = time.perf_counter()
        samples = _samples(s, model, progress)
        extract_s[label] = round(time.perf_counter() - t0, 1)
        train, test = _split(samples, s)
        tag = "" if label == "trained" else " [random weights]"
        specs = [
            (f"node tokens (recurrent){tag}", "node", 1, False),
            (f"per-frame encoder tokens{tag}", "frame", 1, False),
            (f"per-frame tokens + temporal aggregator W={s.window}{tag}", "frame", s.window, False),
        ]
        if label == "trained":
            specs.append(("raw-pixel patches", "pixels", 1, False))
            if s.with_past:
                specs.append(("node tokens + past poses", "node", 1, True))
        for name, source, window, past in specs:
            say(f"training: {name}")
            rows.append(_head_row(name, samples, train, test, s, source, window, past))
            rows[-1]["weights"] = model.model_id
        if base is None:
            base = samples
    assert base is not None
    train, test = _split(base, s)
    say("training: past poses only")
    rows.append(_head_row("past poses only (no image)", base, train, test, s, None, 1, True))
    rows += _baseline_rows(base, test, s)
    counts = {
        k: int(v)
        for k, v in zip(
            ("straight", "turning", "stopping"),
            torch.bincount(base.labels[test], minlength=3).tolist(),
            strict=True,
        )
    }
    return {
        "settings": {
            **asdict(s),
            "bags": [str(b) for b in s.bags],
            "cache": str(s.cache) if s.cache else None,
        },
        "samples": {"train": int(train.sum()), "test": int(test.sum()), "test_segments": counts},
        "drives": {
            "train": len(set(base.drive[train].tolist())),
            "test": len(set(base.drive[test].tolist())),
        },
        "extract_s": extract_s,
        "total_s": round(time.perf_counter() - t_start, 1),
        "rows": rows,
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_average": list(os.getloadavg()),
        },
    }


# Any: JSON-ready result records (settings, rows, nested metrics) read back by key.
def e2e_markdown(result: dict[str, Any]) -> str:
    """The comparison as a markdown table (metres; ADE@1 s and FDE@2 s per segment)."""
    hz = result["settings"]["horizons_s"]
    head = ["row", "weights"] + [f"ADE {h:g}s" for h in hz] + [f"FDE {hz[-1]:g}s"]
    segs = ("straight", "turning", "stopping")
    head += [f"ADE 1s {g}" for g in segs] + [f"FDE {hz[-1]:g}s {g}" for g in segs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in result["rows"]:
        m = r["metrics"]
        cells = [r["row"], r.get("weights", "-")]
        cells += [f"{m['all'][f'ade@{h:g}s']:.3f}" for h in hz]
        cells += [f"{m['all'][f'fde@{hz[-1]:g}s']:.3f}"]
        cells += [f"{m[g]['ade@1s']:.3f}" for g in segs]
        cells += [f"{m[g][f'fde@{hz[-1]:g}s']:.3f}" for g in segs]
        lines.append("| " + " | ".join(cells) + " |")
    c = result["samples"]
    lines.append("")
    lines.append(
        f"Test samples: {c['test']} "
        f"({', '.join(f'{k} {v}' for k, v in c['test_segments'].items())}); "
        f"train samples: {c['train']}."
    )
    return "\n".join(lines) + "\n"


# Any: JSON-ready result records (settings, rows, nested metrics) read back by key.
def sizes_markdown(report: dict[str, Any]) -> str:
    """The ``--sizes`` comparison: head metrics per size, then the features' change."""
    sizes = list(report["heads"])
    first = report["heads"][sizes[0]]
    lines = [
        "| row | "
        + " | ".join(
            f"ADE 1s @{s} | FDE 2s @{s} | ADE 1s turning @{s} | ADE 1s stopping @{s}" for s in sizes
        )
        + " |",
        "|---|" + "---:|" * (4 * len(sizes)),
    ]
    for i, r in enumerate(first["rows"]):
        cells = [r["row"]]
        for s in sizes:
            m = report["heads"][s]["rows"][i]["metrics"]
            cells += [
                f"{m['all']['ade@1s']:.3f}",
                f"{m['all']['fde@2s']:.3f}",
                f"{m['turning']['ade@1s']:.3f}",
                f"{m['stopping']['ade@1s']:.3f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    fc = report["feature_change"]
    a, b = fc["sizes"]
    lines += [
        "",
        f"Features at {a}x{a} vs {b}x{b} on the same frames ({fc['model_id']}; "
        f"{b}-px grid resampled onto the {a // 16}x{a // 16} cells):",
        "",
        f"| tokens | cosine {a} vs {b} | relative L2 | cosine next frame @{b} | "
        f"cosine other drive @{b} |",
        "|---|---:|---:|---:|---:|",
    ]
    for src in ("node", "frame"):
        r = fc[src]
        lines.append(
            f"| {src} | {r[f'cos_{a}_vs_{b}']:.3f} | {r['relative_l2']:.3f} | "
            f"{r['cos_next_frame']:.3f} | {r.get('cos_other_drive', float('nan')):.3f} |"
        )
    return "\n".join(lines) + "\n"
