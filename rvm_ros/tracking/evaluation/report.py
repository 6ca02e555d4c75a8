"""What ``rvm-ros eval-tracking`` reports: the markdown table and JSON-ready metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping

from rvm_ros.tracking.evaluation.evaluate import MethodMetrics, SplitMetrics

__all__ = ["json_safe", "markdown_table"]

_HEADER = (
    "| split | method | AJ | δx_avg | OA | ms/frame | p95 ms |",
    "|---|---|---|---|---|---|---|",
)


def _number(v: object, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals; ``n/a`` for ``None`` and ``nan``."""
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _scores(v: Mapping[str, object]) -> str:
    return (
        f"{_number(v['average_jaccard'])} | {_number(v['average_pts_within_thresh'])} | "
        f"{_number(v['occlusion_accuracy'])}"
    )


def _subsets(v: MethodMetrics) -> dict[str, dict[str, float]]:
    subsets = v.get("subsets", {})
    return subsets if isinstance(subsets, dict) else {}


def _split_rows(split: str, methods: SplitMetrics) -> list[str]:
    """The split's rows: all points per method, then each subset per method."""
    lines = [
        f"| {split} | {m} | {_scores(v)} | {_number(v['ms_per_frame'], 2)} | "
        f"{_number(v['ms_p95'], 2)} |"
        for m, v in methods.items()
    ]
    names = sorted({n for v in methods.values() for n in _subsets(v)})
    for name in names:
        for m, v in methods.items():
            sv = _subsets(v).get(name)
            if sv is not None:
                lines.append(f"| {split}: {name} | {m} | {_scores(sv)} | | |")
    return lines


def markdown_table(metrics: Mapping[str, SplitMetrics]) -> str:
    """``tracking.md``: per split and method AJ, δx_avg, OA and update times, then the
    split's point subsets (``n/a`` where a metric had nothing to count)."""
    lines = list(_HEADER)
    for split, methods in metrics.items():
        lines += _split_rows(split, methods)
    return "\n".join(lines) + "\n"


def json_safe(v: object) -> object:
    """``v`` with every ``nan`` replaced by ``None`` (JSON ``null``), tuples as lists."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v
