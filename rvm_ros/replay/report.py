"""Replay reports: ``report.json``, ``report.md``, plots and videos.

:class:`Visuals` collects what the plots need while a bag replays (one camera at a time,
in processing order) and renders at the end: a histogram of model step latency, a frame
strip (PNG) and a video (MP4) of the PCA colouring of the features beside the images, and
a video of the tracked points over the images. :func:`write_reports` writes the JSON and
Markdown reports of a whole run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rvm_ros.fsutil import atomic_write

log = logging.getLogger(__name__)

STRIP_FRAMES = 8
_KEEP = 2 * STRIP_FRAMES  # frames kept for the strip (stride doubles when full)
VIDEO_HEIGHT = 240
VIDEO_FPS = 10.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return (np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    width = max(2, round(w * height / h)) // 2 * 2  # even sizes for video codecs
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class _VideoOut:
    """An MP4 writer opened on the first frame (its size fixed then)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: Any = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.failed = ""

    def write(self, rgb: np.ndarray) -> None:
        if self.failed:
            return
        if self.writer is None:
            self.size = (int(rgb.shape[1]), int(rgb.shape[0]))
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self.writer = cv2.VideoWriter(str(self.path), fourcc, VIDEO_FPS, self.size)
            if not self.writer.isOpened():
                self.failed = "OpenCV cannot write mp4v video here"
                self.writer = None
                return
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


class _CameraVisuals:
    def __init__(self, out_dir: Path, camera: str, videos: bool) -> None:
        self.camera = camera
        self.basis: Any = None
        self.samples: list[tuple[int, np.ndarray, np.ndarray]] = []  # (seq, image, pca)
        self.stride = 1
        self.count = 0
        self.pca_video = _VideoOut(out_dir / f"pca_{camera}.mp4") if videos else None
        self.tracks_video = _VideoOut(out_dir / f"tracks_{camera}.mp4") if videos else None


class Visuals:
    """Collects frames and features during a replay and renders plots at the end.

    Args:
        out_dir: folder the files go to.
        enabled: False makes every call a no-op (``--no-visuals``).
        videos: also write MP4 videos (besides the PNG plots).
    """

    def __init__(self, out_dir: Path | str, enabled: bool = True, videos: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.videos = videos
        self.cameras: dict[str, _CameraVisuals] = {}
        self.step_ms: dict[str, list[float]] = {}
        self.problems: list[str] = []
        try:
            from rvm_ros.viz import debug as visualize

            self.visualize: Any = visualize
        except ImportError as exc:
            self.visualize = None
            self.problems.append(f"feature and track images unavailable: {exc}")

    def add(self, frame: Any, result: Any) -> None:
        """Record one processed frame (its input image and its ``FrameResult``)."""
        if not self.enabled:
            return
        self.step_ms.setdefault(result.camera, []).append(float(result.step_ms))
        if self.visualize is None:
            return
        cam = self.cameras.get(result.camera)
        if cam is None:
            cam = self.cameras[result.camera] = _CameraVisuals(
                self.out_dir, result.camera, self.videos
            )
        image = _to_uint8(frame.image)
        feats = np.asarray(result.features, np.float32)
        colors, cam.basis = self.visualize.pca_colors(feats, cam.basis)
        pca = cv2.resize(
            _to_uint8(np.asarray(colors)),
            (image.shape[1], image.shape[0]),
            interpolation=cv2.INTER_NEAREST,
        )
        if cam.count % cam.stride == 0:
            cam.samples.append((int(result.seq), _fit_height(image, 96), _fit_height(pca, 96)))
            if len(cam.samples) >= _KEEP:
                cam.samples = cam.samples[::2]
                cam.stride *= 2
        cam.count += 1
        if cam.pca_video is not None:
            pair = np.concatenate(
                [_fit_height(image, VIDEO_HEIGHT), _fit_height(pca, VIDEO_HEIGHT)], axis=1
            )
            cam.pca_video.write(pair)
        if cam.tracks_video is not None and result.tracks is not None:
            from rvm_ros.viz.tracks import draw_legend

            tr = result.tracks
            drawn = self.visualize.draw_tracks(image, tr.x, tr.y, tr.visible, tr.ids, labels=False)
            framed = _fit_height(_to_uint8(np.asarray(drawn)), VIDEO_HEIGHT)
            cam.tracks_video.write(draw_legend(framed))  # key: visible / not visible

    def finish(self, report: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close videos and write the plots; returns ``{kind: [file names]}`` (+ problems)."""
        files: dict[str, Any] = {}
        if not self.enabled:
            return {"disabled": True}
        for cam in self.cameras.values():
            for key, video in (("pca_video", cam.pca_video), ("tracks_video", cam.tracks_video)):
                if video is None:
                    continue
                video.close()
                if video.failed:
                    self.problems.append(f"{video.path.name}: {video.failed}")
                elif video.frames:
                    files.setdefault(key, []).append(video.path.name)
        if any(self.step_ms.values()):
            files["latency_histogram"] = [self._latency_plot()]
        model = _model_label(report or {})
        for cam in self.cameras.values():
            if cam.samples:
                files.setdefault("pca_strip", []).append(self._strip(cam, model))
        if self.problems:
            files["problems"] = list(self.problems)
        return files

    def _latency_plot(self) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        everything = np.concatenate([np.asarray(v) for v in self.step_ms.values() if v])
        bins = np.linspace(0.0, float(everything.max()) * 1.05 + 1e-6, 40).tolist()
        for cam, values in sorted(self.step_ms.items()):
            if values:
                ax.hist(values, bins=bins, alpha=0.6, label=cam)
        p50, p99 = np.percentile(everything, [50, 99])
        ax.axvline(p50, color="k", linestyle="--", linewidth=1, label=f"p50 {p50:.1f} ms")
        ax.axvline(p99, color="r", linestyle=":", linewidth=1, label=f"p99 {p99:.1f} ms")
        ax.set_xlabel("model step latency (ms)")
        ax.set_ylabel("frames")
        ax.set_title("Model step latency per frame")
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = "latency_histogram.png"
        fig.savefig(self.out_dir / name)
        plt.close(fig)
        return name

    def _strip(self, cam: _CameraVisuals, model: str = "") -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        picks = np.linspace(0, len(cam.samples) - 1, min(STRIP_FRAMES, len(cam.samples)))
        chosen = [cam.samples[round(i)] for i in picks]
        cols = len(chosen)
        fig, axes = plt.subplots(2, cols, figsize=(1.9 * cols, 3.6), dpi=100, squeeze=False)
        for c, (seq, image, pca) in enumerate(chosen):
            axes[0, c].imshow(image)
            axes[0, c].set_title(f"frame {seq}", fontsize=8)
            axes[1, c].imshow(pca)
            for r in range(2):
                axes[r, c].axis("off")
        fig.suptitle(
            f"{cam.camera}: images (top) and PCA colouring of features (bottom)"
            + (f"\nmodel {model}" if model else ""),
            fontsize=9,
        )
        fig.tight_layout()
        name = f"pca_strip_{cam.camera}.png"
        fig.savefig(self.out_dir / name)
        plt.close(fig)
        return name


def _model_label(section: dict[str, Any]) -> str:
    """``<model id> (<checkpoint>)`` of a bag's report section, or what of it is known."""
    model_id = (section.get("encoder") or {}).get("model_id")
    checkpoint = section.get("checkpoint")
    if model_id and checkpoint and str(checkpoint) != str(model_id):
        return f"{model_id} ({checkpoint})"
    return str(model_id or checkpoint or "")


# --------------------------------------------------------------------------- reports


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _clean(value: Any) -> Any:
    """NaN/inf → None so that report.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as strict, indented JSON."""
    text = json.dumps(_clean(report), indent=1, default=_json_default, allow_nan=False)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_reports(out_dir: Path | str, report: dict[str, Any], subdirs: Sequence[str]) -> None:
    """Write ``report.json`` and ``report.md`` into ``out_dir`` (and per-bag sub-reports).

    Args:
        out_dir: output folder of the run.
        report: the combined report (``bags`` holds one section per bag).
        subdirs: per bag, its sub-folder name ("" when the bag's files are in ``out_dir``).
    """
    out_dir = Path(out_dir)
    for section, sub in zip(report.get("bags", []), subdirs, strict=False):
        if sub:
            one = {k: v for k, v in report.items() if k not in ("bags", "cameras")}
            one.update(
                complete=section.get("complete", False),
                bags=[section],
                cameras=section.get("cameras", {}),
            )
            write_json(out_dir / sub / "report.json", one)
            _write_text(out_dir / sub / "report.md", render_markdown(one, ""))
    write_json(out_dir / "report.json", report)
    _write_text(out_dir / "report.md", render_markdown(report, subdirs))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def _cluster_lines(cluster: dict[str, Any]) -> list[str]:
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


def render_markdown(report: dict[str, Any], subdirs: Sequence[str] | str) -> str:
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
        prefix = f"{sub}/" if sub else ""
        lines += [f"## Bag `{section.get('bag')}`", ""]
        if section.get("error"):
            lines += [f"**Failed**: {section['error']}", ""]
        enc = section.get("encoder", {})
        if enc:
            lines += [
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
        worker = section.get("worker")
        if worker and "node" in worker:
            lines.append(
                f"- ran on Ray node {worker['node']} ({str(worker.get('node_id'))[:8]}), "
                f"worker pid {worker.get('pid')}, {_fmt(worker.get('duration_s'))} s, "
                f"attempt {worker.get('attempts')}"
            )
        for failure in (worker or {}).get("failed_attempts", []):
            lines.append(f"- earlier attempt failed: {failure}")
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
            lines += [
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
            for name, c in cams.items():
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
        plots = section.get("plots", {})
        for name in plots.get("latency_histogram", []):
            lines += [f"![step latency]({prefix}{name})", ""]
        for name in plots.get("pca_strip", []):
            model = _model_label(section)
            lines += [f"![PCA of the features of {model or 'the model'}]({prefix}{name})", ""]
        for key in ("pca_video", "tracks_video"):
            for name in plots.get(key, []):
                lines.append(f"- video: [{prefix}{name}]({prefix}{name})")
        for problem in plots.get("problems", []):
            lines.append(f"- plots: {problem}")
        if plots.get("error"):
            lines.append(f"- plots failed: {plots['error']}")
        lines.append("")
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
    lines += [
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
    return "\n".join(lines)
