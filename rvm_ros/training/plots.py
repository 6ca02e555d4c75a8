"""Loss-curve picture of a run's ``metrics.jsonl``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from rvm_ros.fsutil import atomic_write

__all__ = ["plot_loss_curve", "plot_loss_curve_safely", "read_metrics"]

LOG = logging.getLogger(__name__)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The records of a ``metrics.jsonl`` file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_loss_curve(metrics: str | os.PathLike[str], png: str | os.PathLike[str]) -> Path:
    """Plot total loss, its terms and the learning rate against the step; write ``png``.

    Raises:
        ValueError: No record in the metrics file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics)
    if not records:
        raise ValueError(f"{metrics}: no metrics yet")
    steps = [r["step"] for r in records]
    fig, (ax, ax_lr) = plt.subplots(
        2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for key, label in (
        ("loss", "total"),
        ("pixel", "pixel MSE"),
        ("patch_norm", "per-patch normalised"),
        ("correspondence", "correspondence CE"),
    ):
        values = [r.get(key, 0.0) for r in records]
        if any(v > 0 for v in values):
            ax.plot(steps, values, label=label, linewidth=1)
    ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    ax_lr.plot(steps, [r["lr"] for r in records], color="k", linewidth=1)
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("optimiser step")
    ax_lr.grid(True, alpha=0.3)
    fig.tight_layout()
    out = Path(png)
    try:
        atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    finally:
        plt.close(fig)
    return out


def plot_loss_curve_safely(metrics: Path, png: Path) -> None:
    """:func:`plot_loss_curve`, a failure logged as a warning (a missing plot never stops
    training)."""
    try:
        plot_loss_curve(metrics, png)
    except (OSError, ValueError) as exc:
        LOG.warning("loss curve not written: %s", exc)
