"""Replay plots and videos of one bag.

:class:`Visuals` collects what the plots need while a bag replays (one camera at a time,
in processing order) and renders at the end: a histogram of model step latency, a frame
strip (PNG) and a video (MP4) of the PCA colouring of the features beside the images, and
a video of the tracked points over the images.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Literal

import cv2
import numpy as np

from rvm_ros.pipeline import FrameInput, FrameResult
from rvm_ros.replay.records import BagSection, Plots, model_label

__all__ = ["STRIP_FRAMES", "VIDEO_FPS", "VIDEO_HEIGHT", "Visuals"]

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
        self.writer: cv2.VideoWriter | None = None
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
        self.basis: np.ndarray | None = None
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

            self.visualize: ModuleType | None = visualize
        except ImportError as exc:
            self.visualize = None
            self.problems.append(f"feature and track images unavailable: {exc}")

    def add(self, frame: FrameInput, result: FrameResult) -> None:
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

    def finish(self, report: BagSection | None = None) -> Plots:
        """Close videos and write the plots; returns ``{kind: [file names]}`` (+ problems)."""
        files: Plots = {}
        if not self.enabled:
            return {"disabled": True}
        for cam in self.cameras.values():
            videos: tuple[tuple[Literal["pca_video", "tracks_video"], _VideoOut | None], ...] = (
                ("pca_video", cam.pca_video),
                ("tracks_video", cam.tracks_video),
            )
            for key, video in videos:
                if video is None:
                    continue
                video.close()
                if video.failed:
                    self.problems.append(f"{video.path.name}: {video.failed}")
                elif video.frames:
                    files.setdefault(key, []).append(video.path.name)
        if any(self.step_ms.values()):
            files["latency_histogram"] = [self._latency_plot()]
        model = model_label(report or {})
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
