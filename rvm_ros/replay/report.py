"""Replay reports: ``report.json`` and ``report.md`` of a whole run (and of each bag).

:func:`write_reports` writes the JSON and Markdown reports; :func:`render_markdown` is the
Markdown text. Plots and videos are :mod:`rvm_ros.replay.visuals`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rvm_ros.fsutil import atomic_write
from rvm_ros.replay.records import (
    BagSection,
    CameraSummary,
    ClusterSummary,
    RunReport,
    model_label,
)

__all__ = ["render_markdown", "write_json", "write_reports"]


# --------------------------------------------------------------------------- reports


def _json_default(value: object) -> object:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _clean(value: object) -> object:
    """NaN/inf → None so that report.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, report: RunReport) -> None:
    """Write ``report`` as strict, indented JSON."""
    text = json.dumps(_clean(report), indent=1, default=_json_default, allow_nan=False)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_reports(out_dir: Path | str, report: RunReport, subdirs: Sequence[str]) -> None:
    """Write ``report.json`` and ``report.md`` into ``out_dir`` (and per-bag sub-reports).

    Args:
        out_dir: output folder of the run.
        report: the combined report (``bags`` holds one section per bag).
        subdirs: per bag, its sub-folder name ("" when the bag's files are in ``out_dir``).
    """
    out_dir = Path(out_dir)
    for section, sub in zip(report.get("bags", []), subdirs, strict=False):
        if sub:
            one = _bag_report(report, section)
            write_json(out_dir / sub / "report.json", one)
            _write_text(out_dir / sub / "report.md", render_markdown(one, ""))
    write_json(out_dir / "report.json", report)
    _write_text(out_dir / "report.md", render_markdown(report, subdirs))


def _bag_report(report: RunReport, section: BagSection) -> RunReport:
    """The report of one bag of a run: the run's keys, with only this bag's section."""
    one = report.copy()  # keys in the run report's order; bags and cameras go last
    one.pop("bags", None)
    one.pop("cameras", None)
    one["complete"] = section.get("complete", False)
    one["bags"] = [section]
    one["cameras"] = section.get("cameras", {})
    return one


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def _cluster_lines(cluster: ClusterSummary) -> list[str]:
    """The ``--ray`` section: where the bags ran, per-node throughput, faults."""
    lines = [
        "## Ray cluster",
        "",
        f"Cluster {cluster.get('address')}"
        + (f", dashboard {cluster['dashboard']}" if cluster.get("dashboard") else "")
        + f"; {cluster.get('workers')} workers (num_cpus "
        f"{_fmt(cluster.get('num_cpus_per_worker'))}, num_gpus "
        f"{_fmt(cluster.get('num_gpus_per_worker'))} each), "
        f"{cluster.get('workers_started')} started in all; model loaded "
        f"{cluster.get('model_loads')} times; {cluster.get('retried_bags')} bags retried, "
        f"{cluster.get('resumed_bags')} kept from an earlier run (--resume).",
        "",
        "| node | workers | bags | frames | busy (s) | frames/s |",
        "|---|---|---|---|---|---|",
    ]
    for node, n in cluster.get("nodes", {}).items():
        lines.append(
            f"| {node} | {n['workers']} | {n['bags']} | {n['frames']} | "
            f"{_fmt(n['busy_s'])} | {_fmt(n['fps'])} |"
        )
    lines.append("")
    for death in cluster.get("worker_deaths", []):
        lines.append(f"- {death}")
    return [*lines, ""]


def render_markdown(report: RunReport, subdirs: Sequence[str] | str) -> str:
    """The human-readable report (Markdown) of a run."""
    lines: list[str] = ["# Replay report", ""]
    if not report.get("complete"):
        lines += [
            "**INCOMPLETE**: the run was interrupted or a bag failed; the numbers below "
            "cover only what was processed.",
            "",
        ]
    subs = [subdirs] * len(report.get("bags", [])) if isinstance(subdirs, str) else subdirs
    for section, sub in zip(report.get("bags", []), subs, strict=False):
        lines += _bag_lines(section, f"{sub}/" if sub else "")
    if report.get("cluster"):
        lines += _cluster_lines(report["cluster"])
    avg = report.get("tapvid_average")
    if avg:
        lines += [
            f"## TAP-Vid over {avg['videos']} camera stream(s) (mean of per-stream metrics)",
            "",
            ", ".join(f"{k} {_fmt(v)}" for k, v in avg["metrics"].items()),
            "",
        ]
    return "\n".join(lines + _NOTES)


_NOTES = [
    "## Notes",
    "",
    "- Every input frame is listed in `report.json` under `cameras.<camera>.frames` "
    "(or `bags[i].cameras...`) as `processed` (with its sequence number and any state "
    "reset) or `skipped` with a reason.",
    "- Feature stability: mean cosine similarity of the patch features of consecutive "
    "processed frames of a camera (pairs across a state reset are left out).",
    "- Ground truth: a topic `<image topic>/gt_tracks` of type "
    "`rvm_ros/msg/TrackedPoints` (image pixels, header stamps equal to the images') "
    "gives TAP-Vid metrics; each ground-truth point is queried on its first visible frame.",
    "",
]


def _bag_lines(section: BagSection, prefix: str) -> list[str]:
    """One bag's part of the report; ``prefix`` is its folder in the run ("" or "sub/")."""
    lines = [f"## Bag `{section.get('bag')}`", ""]
    if section.get("error"):
        lines += [f"**Failed**: {section['error']}", ""]
    lines += _model_lines(section)
    lines += _worker_lines(section)
    lines += _timing_lines(section)
    if section.get("features_bag"):
        lines.append(f"- features: `{prefix}features/` ({section.get('storage')})")
    for err in section.get("read_errors", []):
        lines.append(f"- **read error**: {err}")
    for t in section.get("ignored_image_topics", []):
        lines.append(f"- image topic `{t}` ignored (no configured camera subscribes to it)")
    for t in section.get("missing_camera_topics", []):
        lines.append(f"- configured camera topic `{t}` is not in the bag")
    lines.append("")
    cams = section.get("cameras", {})
    if cams:
        lines += _camera_table(cams)
        for name, c in cams.items():
            lines += _camera_details(name, c)
    lines += _plot_lines(section, prefix)
    lines.append("")
    return lines


def _model_lines(section: BagSection) -> list[str]:
    """Model, checkpoint, backend and input size (and a warning for random weights)."""
    enc = section.get("encoder", {})
    if not enc:
        return []
    lines = [
        f"- model `{enc.get('model_id')}` (checkpoint `{section.get('checkpoint')}`), "
        f"backend {enc.get('backend')} {enc.get('precision')} on {enc.get('device')}, "
        f"input {enc.get('height')}x{enc.get('width')}, torch threads "
        f"{section.get('threads')}",
    ]
    if str(section.get("checkpoint", "")).startswith("random:"):
        lines.append(
            "- **random weights**: features and tracks show the pipeline working, "
            "not what a trained RVM sees (`rvm-ros fetch S` gets a checkpoint)."
        )
    return lines


def _worker_lines(section: BagSection) -> list[str]:
    """Where a ``--ray`` bag ran, and its failed attempts."""
    lines = []
    worker = section.get("worker")
    if worker and "node" in worker:
        lines.append(
            f"- ran on Ray node {worker['node']} ({str(worker.get('node_id'))[:8]}), "
            f"worker pid {worker.get('pid')}, {_fmt(worker.get('duration_s'))} s, "
            f"attempt {worker.get('attempts')}"
        )
    for failure in (worker or {}).get("failed_attempts", []):
        lines.append(f"- earlier attempt failed: {failure}")
    return lines


def _timing_lines(section: BagSection) -> list[str]:
    """Wall time, throughput and where the time went."""
    lines = []
    if "wall_s" in section:
        lines.append(
            f"- wall time {_fmt(section.get('wall_s'))} s, throughput "
            f"{_fmt(section.get('throughput_fps'))} frames/s; bare model steps "
            f"{_fmt(section.get('model_step_fps'))} frames/s; time outside the model "
            f"step {_fmt(100 * (section.get('overhead_fraction') or 0.0))} %"
        )
    timing = section.get("timing_s")
    if timing:
        other = max(0.0, timing.get("process_s", 0.0) - timing.get("step_s", 0.0))
        lines.append(
            f"- time split: model step {_fmt(timing.get('step_s'))} s; rest of the "
            f"processing core (preprocessing, pooling, tracking) {_fmt(other)} s; in "
            f"background threads, overlapping the step: reading + image conversion "
            f"{_fmt(timing.get('decode_s'))} s, writing + plots "
            f"{_fmt(timing.get('write_s', 0.0) + timing.get('visuals_s', 0.0))} s"
        )
    return lines


def _camera_table(cams: dict[str, CameraSummary]) -> list[str]:
    """One row per camera: frames, skips, resets, latency, throughput, stability, tracks."""
    lines = [
        "| camera | frames in | processed | skipped | resets | step p50 / p99 (ms) "
        "| frames/s | stability (cos) | tracks | visible |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in cams.items():
        lat = c["step_latency_ms"]
        tr = c["tracks"]
        lines.append(
            f"| {name} | {c['frames_in']} | {c['processed']} | "
            f"{c['skipped_total']} ({_counts(c['skipped'])}) | "
            f"{c['reset_total']} ({_counts(c['resets'])}) | "
            f"{_fmt(lat['p50'])} / {_fmt(lat['p99'])} | {_fmt(c['throughput_fps'])} | "
            f"{_fmt(c['feature_stability']['mean_cosine'])} | {tr['count']} | "
            f"{_fmt(tr['visible_ratio'])} |"
        )
    lines.append("")
    return lines


def _camera_details(name: str, c: CameraSummary) -> list[str]:
    """A camera's TAP-Vid metrics and its first skipped frames."""
    lines = []
    tap = c.get("tapvid")
    if tap:
        lines.append(
            f"TAP-Vid ({name}): "
            + (
                tap["error"]
                if "error" in tap
                else f"{tap['points']} points over {tap['frames']} frames; "
                + ", ".join(f"{k} {_fmt(v)}" for k, v in tap["metrics"].items())
            )
        )
        lines.append("")
    skipped = [f for f in c.get("frames", []) if f.get("status") == "skipped"]
    if skipped:
        lines.append(f"Skipped frames of {name} (first 20 of {len(skipped)}):")
        lines.append("")
        for f in skipped[:20]:
            lines.append(
                f"- frame {f['index']} (stamp {f.get('stamp_ns')}): "
                f"{f['reason']}: {f.get('detail', '')}"
            )
        lines.append("")
    return lines


def _plot_lines(section: BagSection, prefix: str) -> list[str]:
    """Links to a bag's plots and videos, and what went wrong with them."""
    lines: list[str] = []
    plots = section.get("plots", {})
    for name in plots.get("latency_histogram", []):
        lines += [f"![step latency]({prefix}{name})", ""]
    for name in plots.get("pca_strip", []):
        model = model_label(section)
        lines += [f"![PCA of the features of {model or 'the model'}]({prefix}{name})", ""]
    for name in plots.get("pca_video", []) + plots.get("tracks_video", []):
        lines.append(f"- video: [{prefix}{name}]({prefix}{name})")
    for problem in plots.get("problems", []):
        lines.append(f"- plots: {problem}")
    if plots.get("error"):
        lines.append(f"- plots failed: {plots['error']}")
    return lines
