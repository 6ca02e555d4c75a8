"""The eval-tracking report: the markdown table and JSON-safe metrics."""

from __future__ import annotations

import json
import math

from rvm_ros.tracking.evaluation.evaluate import SplitMetrics
from rvm_ros.tracking.evaluation.report import json_safe, markdown_table


def _metrics(aj: float, subsets: dict[str, dict[str, float]] | None = None) -> SplitMetrics:
    row: dict[str, float] = {
        "average_jaccard": aj,
        "average_pts_within_thresh": 0.5,
        "occlusion_accuracy": 0.875,
    }
    return {
        "klt": {**row, "ms_per_frame": 1.234, "ms_p95": 2.0, "subsets": subsets or {}},
        "static": {**row, "ms_per_frame": math.nan, "ms_p95": 0.1, "subsets": {}},
    }


def test_table_rows_per_split_and_method_then_subsets() -> None:
    sub = {"re-appearing": {"average_jaccard": math.nan, "average_pts_within_thresh": 0.25,
                            "occlusion_accuracy": 1.0}}  # fmt: skip
    table = markdown_table({"plain": _metrics(0.75, sub), "gap": _metrics(math.nan)})
    lines = table.splitlines()
    assert lines[0].startswith("| split | method | AJ |") and table.endswith("\n")
    assert "| plain | klt | 0.750 | 0.500 | 0.875 | 1.23 | 2.00 |" in lines
    assert "| plain | static | 0.750 | 0.500 | 0.875 | n/a | 0.10 |" in lines
    # a subset only for the method that has it, after the split's rows, no timings
    assert lines.index("| plain: re-appearing | klt | n/a | 0.250 | 1.000 | | |") == 4
    assert "| gap | klt | n/a | 0.500 | 0.875 | 1.23 | 2.00 |" in lines
    assert not any(line.startswith("| gap:") for line in lines)
    assert len(lines) == 2 + 3 + 2


def test_json_safe_turns_every_nan_into_null() -> None:
    value = {"a": math.nan, "b": [1.0, math.nan, (2, math.nan)], "c": {"d": {"e": math.nan}}}
    safe = json_safe(value)
    assert safe == {"a": None, "b": [1.0, None, [2, None]], "c": {"d": {"e": None}}}
    assert "NaN" not in json.dumps(safe)
    assert json_safe("x") == "x" and json_safe(3) == 3
