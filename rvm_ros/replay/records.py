"""The records of a replay report (``report.json``), as typed dictionaries.

A report is JSON: these ``TypedDict`` s name its keys and value types for the code that
builds and reads it (:mod:`.run`, :mod:`.ledger`, :mod:`.workers`, :mod:`.report`, the Ray
engine). Keys that only some runs have (an error, an interrupt, the Ray worker, the
ground-truth metrics) are optional (``total=False``). Key order in ``report.json`` is the
order in which the code inserts them, not the order here. :func:`model_label` names the
model of a section (plots and Markdown).
"""

from __future__ import annotations

from typing import TypedDict


class FrameEntry(TypedDict, total=False):
    """One input frame of a camera in the ledger: processed (``seq``) or skipped (``reason``)."""

    index: int
    bag_time_ns: int
    stamp_ns: int | None
    status: str
    seq: int
    reset: str
    reason: str
    detail: str


class LatencyStats(TypedDict):
    """Model step latency of a camera's frames, in milliseconds."""

    p50: float | None
    p99: float | None
    mean: float | None
    steps: int


class FeatureStability(TypedDict):
    """Mean cosine similarity of consecutive feature maps (pairs across a reset left out)."""

    mean_cosine: float | None
    pairs: int


class TrackLifetimes(TypedDict):
    """Frames from a track's first to its last appearance."""

    mean: float | None
    min: int | None
    max: int | None


class TrackStats(TypedDict):
    """Tracked points of a camera: how many, how long, how often visible."""

    count: int
    lifetime_frames: TrackLifetimes
    visible_ratio: float | None


class TapvidResult(TypedDict, total=False):
    """TAP-Vid metrics of the ground-truth tracks of a camera, or why there are none."""

    points: int
    frames: int
    metrics: dict[str, float | None]
    error: str


class CameraExtras(TypedDict, total=False):
    """What only some cameras' summaries have: ``tapvid`` (a topic with ground truth)."""

    tapvid: TapvidResult


class CameraSummary(CameraExtras):
    """One camera of a bag: its frames, their fate, latency, stability and tracks."""

    camera: str
    topic: str
    msgtype: str
    frames_in: int
    processed: int
    skipped: dict[str, int]
    skipped_total: int
    resets: dict[str, int]
    reset_total: int
    step_latency_ms: LatencyStats
    throughput_fps: float | None
    feature_stability: FeatureStability
    tracks: TrackStats
    image_size: list[int] | None
    feature_grid: list[int] | None
    model_id: str
    frames: list[FrameEntry]


class Plots(TypedDict, total=False):
    """The plot and video files of a bag (names in its folder), or what went wrong."""

    pca_video: list[str]
    tracks_video: list[str]
    latency_histogram: list[str]
    pca_strip: list[str]
    problems: list[str]
    disabled: bool
    error: str


class WorkerRecord(TypedDict, total=False):
    """Where a bag ran on Ray and how many tries it took (``bags[i].worker``)."""

    node: str
    node_id: str
    host: str
    pid: int
    attempts: int
    duration_s: float
    model_loaded: bool
    failed_attempts: list[str]


class BagSection(TypedDict, total=False):
    """The report of one bag (``bags[i]``); a bag that failed has ``error`` and little else.

    ``retryable`` and ``model_loaded`` travel from a Ray worker to the driver and are
    removed (or moved into ``worker``) before the section is reported.
    """

    bag: str
    storage: str
    complete: bool
    error: str
    interrupted: bool
    retryable: bool
    model_loaded: bool
    read_errors: list[str]
    ignored_image_topics: list[str]
    missing_camera_topics: list[str]
    checkpoint: str
    backend: str
    precision: str
    threads: int
    processing: dict[str, object]
    model_load_s: float
    encoder: dict[str, object]
    warmup_s: float
    features_bag: str
    wall_s: float
    timing_s: dict[str, float]
    steps: int
    throughput_fps: float | None
    model_step_fps: float | None
    overhead_fraction: float | None
    cameras: dict[str, CameraSummary]
    scene_tokens: dict[str, object]
    plots: Plots
    worker: WorkerRecord


class NodeStats(TypedDict):
    """Bags, frames and busy time of one Ray node."""

    bags: int
    frames: int
    busy_s: float
    workers: int
    fps: float | None


class ClusterSummary(TypedDict):
    """The report's ``cluster`` entry of a ``--ray`` run."""

    address: str | None
    dashboard: str | None
    workers: int | None
    workers_started: int | None
    num_cpus_per_worker: float | None
    num_gpus_per_worker: float | None
    nodes: dict[str, NodeStats]
    resumed_bags: int
    retried_bags: int
    worker_deaths: list[str]
    model_loads: int
    model_load_s: list[float]
    wall_s: float


class TapvidAverage(TypedDict):
    """Mean TAP-Vid metrics over every camera stream with ground truth."""

    videos: int
    metrics: dict[str, float | None]


class RunReport(TypedDict, total=False):
    """The report of a whole run (``report.json``): one section per bag, and totals."""

    tool: str
    complete: bool
    wall_s: float
    config: str | None
    bags: list[BagSection]
    read_errors: list[str]
    processed: int
    throughput_fps: float | None
    cameras: dict[str, CameraSummary]
    tapvid_average: TapvidAverage
    cluster: ClusterSummary
    interrupted: bool


def model_label(section: BagSection) -> str:
    """``<model id> (<checkpoint>)`` of a bag's report section, or what of it is known."""
    model_id = (section.get("encoder") or {}).get("model_id")
    checkpoint = section.get("checkpoint")
    if model_id and checkpoint and str(checkpoint) != str(model_id):
        return f"{model_id} ({checkpoint})"
    return str(model_id or checkpoint or "")


__all__ = [
    "BagSection",
    "CameraExtras",
    "CameraSummary",
    "ClusterSummary",
    "FeatureStability",
    "FrameEntry",
    "LatencyStats",
    "NodeStats",
    "Plots",
    "RunReport",
    "TapvidAverage",
    "TapvidResult",
    "TrackLifetimes",
    "TrackStats",
    "WorkerRecord",
    "model_label",
]
