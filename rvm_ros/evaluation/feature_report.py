"""The outputs of `rvm-ros eval-features`: metrics.json, a markdown table, PNG pictures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rvm_ros.evaluation.feature_metrics import DISPLACEMENT_BUCKETS
from rvm_ros.evaluation.features import FeatureEvalSettings, SourceResult

__all__ = ["markdown_table", "metrics", "write_report"]

PIXELS = "raw pixels"


def _pixels(results: Sequence[SourceResult]) -> SourceResult | None:
    return next((r for r in results if r.name == PIXELS), None)


def metrics(
    # Any: JSON-ready report records (nested numbers, lists and names) read back by key.
    results: Sequence[SourceResult],
    extra: dict[str, Any],
    settings: FeatureEvalSettings,
    # Any: JSON-ready report records (nested numbers, lists and names) read back by key.
) -> dict[str, Any]:
    """Everything as one JSON-ready dictionary."""
    pixels = _pixels(results)
    plain = {k: v for k, v in extra.items() if not isinstance(v, np.ndarray)}
    return {
        "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
        "sources": [r.to_dict(pixels) for r in results],
        **plain,
    }


def _bucket_name(lo: float, hi: float) -> str:
    return f">= {lo:g}" if hi == float("inf") else f"{lo:g}-{hi:g}"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


# Any: JSON-ready report records (nested numbers, lists and names) read back by key.
def markdown_table(results: Sequence[SourceResult], extra: dict[str, Any]) -> str:
    """The report as markdown: one row per feature source."""
    pixels = _pixels(results)
    base = pixels.correspondence.top1_from(3.0) if pixels else None
    buckets = " | ".join(f"top-1 {_bucket_name(lo, hi)} cells" for lo, hi in DISPLACEMENT_BUCKETS)
    head = (
        f"| features | position | content | time | position, 1/U floor removed | {buckets} | "
        "top-1 >= 3 cells | "
        "vs pixels | static stability (1 frame / drift) | label IoU |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        far = r.correspondence.top1_from(3.0)
        ratio = f"{far / base:.2f}x" if far is not None and base else "-"
        cells = " | ".join(_fmt(v) for v in r.correspondence.top1())
        lines.append(
            f"| {r.name} | {_fmt(r.shares.get('position'))} | {_fmt(r.shares.get('content'))} | "
            f"{_fmt(r.shares.get('time'))} | {_fmt(r.shares.get('position_corrected'))} | "
            f"{cells} | {_fmt(far)} | {ratio} | "
            f"{_fmt(r.stability[0])} / {_fmt(r.stability[1])} | {_fmt(r.labels.iou())} |"
        )
    copy = extra.get("copy_reference_labels", {})
    trials = results[0].correspondence.trials.tolist() if results else []
    units = extra.get("units", [])
    lines += [
        "",
        f"Variance decomposition over {len(units)} shots ({', '.join(units)}); with U shots a "
        f"map without any position component still shows about 1/U = "
        f"{1 / max(1, len(units)):.2f} position share; the corrected column subtracts that "
        "floor as estimated from the content share (content / (U - 1)).",
        f"Correspondence cells per displacement bucket: {trials}. Label propagation baseline "
        f"(copy the reference frame's labels, position only): IoU "
        f"{_fmt(copy.get('object_iou'))}.",
    ]
    return "\n".join(lines) + "\n"


def _pca_picture(
    results: Sequence[SourceResult], frames: np.ndarray, patch: int, scale: int = 1
) -> np.ndarray:
    """Rows: the frames, then per source its features' PCA colours (one basis per source,
    fitted on all shown frames together, so a colour means the same thing in every frame)."""
    from rvm_ros.viz.pca import pca_colors

    n, height, width, _ = frames.shape
    h, w = height // patch, width // patch
    rows = [frames]
    labels = ["frames"]
    for r in results:
        feats = r.pca_features
        if feats is None:
            continue
        joint = feats.reshape(1, n * h * w, -1)  # one basis for all frames
        colours, _ = pca_colors(joint)
        tiles = colours.reshape(n, h, w, 3).repeat(patch, 1).repeat(patch, 2)
        rows.append(tiles)
        labels.append(r.name)
    gap, margin = 4, 8 * max(len(t) for t in labels)
    canvas = np.full(
        (len(rows) * (height + gap), margin + n * (width + gap), 3), 255, np.uint8
    )  # white separators
    for i, row in enumerate(rows):
        y = i * (height + gap)
        _text(canvas, labels[i], (4, y + height // 2))
        for j in range(n):
            x = margin + j * (width + gap)
            canvas[y : y + height, x : x + width] = row[j]
    return canvas.repeat(scale, 0).repeat(scale, 1) if scale > 1 else canvas


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    import cv2

    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)


def _correspondence_plot(results: Sequence[SourceResult], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [_bucket_name(lo, hi) for lo, hi in DISPLACEMENT_BUCKETS]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for r in results:
        ys = [np.nan if v is None else v for v in r.correspondence.top1()]
        ax.plot(names, ys, marker="o", label=r.name)
    ax.set_xlabel("displacement (cells)")
    ax.set_ylabel("top-1")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def write_report(
    folder: Path,
    results: Sequence[SourceResult],
    # Any: JSON-ready report records (nested numbers, lists and names) read back by key.
    extra: dict[str, Any],
    settings: FeatureEvalSettings,
    patch: int,
) -> list[Path]:
    """Write ``metrics.json``, ``table.md``, ``pca.png`` and ``correspondence.png`` into
    ``folder`` (created); returns the files written."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "metrics.json", folder / "table.md"]
    written[0].write_text(json.dumps(metrics(results, extra, settings), indent=2) + "\n")
    written[1].write_text(markdown_table(results, extra))
    frames = extra.get("picture_frames")
    if isinstance(frames, np.ndarray):
        picture = _pca_picture(results, frames, patch, scale=2)
        path = folder / "pca.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")
        written.append(path)
    _correspondence_plot(results, folder / "correspondence.png")
    written.append(folder / "correspondence.png")
    return written
