"""Per-camera ledger of a replay: every input frame, its fate, latency and track statistics."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rvm_ros.pipeline import FrameResult
from rvm_ros.replay.records import CameraSummary, FrameEntry, LatencyStats

__all__ = ["CameraLog"]


@dataclass
class CameraLog:
    """Everything recorded about one camera during a replay.

    ``frames`` is the ledger: one entry per input message, appended when it is read, then
    marked processed (:meth:`result`) or skipped (:meth:`skip`).
    """

    camera: str
    topic: str
    msgtype: str
    frames: list[FrameEntry] = field(default_factory=list)  # the ledger
    step_ms: list[float] = field(default_factory=list)
    resets: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    processed: int = 0
    cos_sum: float = 0.0
    cos_pairs: int = 0
    prev_features: np.ndarray | None = None
    tracks: dict[int, list[int]] = field(default_factory=dict)  # id -> [first, last, seen, vis]
    image_size: tuple[int, int] | None = None
    model_id: str = ""
    grid: tuple[int, int, int] | None = None

    def skip(self, index: int, reason: str, detail: str) -> None:
        """Mark input frame ``index`` skipped, and why."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        _mark_skipped(self.frames[index], reason, detail)

    def result(self, index: int, res: FrameResult) -> None:
        """Record the processed input frame ``index``: its reset, features and tracks."""
        self.processed += 1
        entry = self.frames[index]
        entry["status"] = "processed"
        entry["seq"] = int(res.seq)
        if res.state_reset:
            entry["reset"] = res.reset_reason
            self.resets[res.reset_reason] = self.resets.get(res.reset_reason, 0) + 1
        self.model_id = res.model_id
        self.grid = (int(res.grid_height), int(res.grid_width), int(res.channels))
        feats = np.asarray(res.features, np.float32).reshape(-1, res.channels)
        prev = self.prev_features
        if prev is not None and not res.state_reset and prev.shape == feats.shape:
            num = np.sum(feats * prev, axis=1)
            den = np.linalg.norm(feats, axis=1) * np.linalg.norm(prev, axis=1)
            cos = num / np.maximum(den, 1e-12)
            self.cos_sum += float(np.mean(cos))
            self.cos_pairs += 1
        self.prev_features = feats
        if res.tracks is not None:
            seq = int(res.seq)
            for tid, vis in zip(res.tracks.ids.tolist(), res.tracks.visible.tolist(), strict=False):
                rec = self.tracks.get(int(tid))
                if rec is None:
                    rec = self.tracks[int(tid)] = [seq, seq, 0, 0]
                rec[1] = seq
                rec[2] += 1
                rec[3] += int(bool(vis))

    def summary(self, wall_s: float) -> CameraSummary:
        """The camera's report section (frames never processed are marked interrupted)."""
        for entry in self.frames:  # read but never processed: the run stopped early
            if "status" not in entry:
                _mark_skipped(entry, "interrupted", "run stopped")
                self.skipped["interrupted"] = self.skipped.get("interrupted", 0) + 1
        steps = np.asarray(self.step_ms, np.float64)
        latency: LatencyStats = (
            {
                "p50": float(np.percentile(steps, 50)),
                "p99": float(np.percentile(steps, 99)),
                "mean": float(steps.mean()),
                "steps": len(self.step_ms),
            }
            if len(steps)
            else {"p50": None, "p99": None, "mean": None, "steps": 0}
        )
        lifetimes = [r[1] - r[0] + 1 for r in self.tracks.values()]
        seen = sum(r[2] for r in self.tracks.values())
        visible = sum(r[3] for r in self.tracks.values())
        return {
            "camera": self.camera,
            "topic": self.topic,
            "msgtype": self.msgtype,
            "frames_in": len(self.frames),
            "processed": self.processed,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "resets": dict(sorted(self.resets.items())),
            "reset_total": sum(self.resets.values()),
            "step_latency_ms": latency,
            "throughput_fps": self.processed / wall_s if wall_s > 0 else None,
            "feature_stability": {
                "mean_cosine": self.cos_sum / self.cos_pairs if self.cos_pairs else None,
                "pairs": self.cos_pairs,
            },
            "tracks": {
                "count": len(self.tracks),
                "lifetime_frames": {
                    "mean": float(np.mean(lifetimes)) if lifetimes else None,
                    "min": int(min(lifetimes)) if lifetimes else None,
                    "max": int(max(lifetimes)) if lifetimes else None,
                },
                "visible_ratio": visible / seen if seen else None,
            },
            "image_size": list(self.image_size) if self.image_size else None,
            "feature_grid": list(self.grid) if self.grid else None,
            "model_id": self.model_id,
            "frames": self.frames,
        }


def _mark_skipped(entry: FrameEntry, reason: str, detail: str) -> None:
    entry["status"] = "skipped"
    entry["reason"] = reason
    entry["detail"] = detail
