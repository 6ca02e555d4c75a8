"""What a run reports while it trains: ``metrics.jsonl``, TensorBoard and the progress bar."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["MetricsLog", "TensorBoard", "progress_bar"]


class _ScalarWriter(Protocol):
    """The part of ``torch.utils.tensorboard.SummaryWriter`` used here."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> object: ...

    def close(self) -> object: ...


class TensorBoard:
    """Scalars of each metrics record in ``<out_dir>/tensorboard`` (when tensorboard is
    installed and ``enabled``; otherwise every call does nothing).

    Args:
        out_dir: Run folder.
        enabled: Write at all (rank 0 only).
    """

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.writer: _ScalarWriter | None = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def log(self, record: dict[str, float]) -> None:
        """Add every number of ``record`` at its ``step``."""
        if self.writer is None:
            return
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, int(record["step"]))

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()


class MetricsLog:
    """Windowed means of the step values, one line of ``metrics.jsonl`` (and TensorBoard
    scalars) per flush.

    Args:
        out_dir: Run folder.
        main: Whether this process writes (rank 0).
        rate_key: Name of the throughput field (``clips_per_s``, ``frames_per_s``).
        units_per_step: What one step processes, in the rate's unit.
    """

    def __init__(self, out_dir: Path, main: bool, rate_key: str, units_per_step: int) -> None:
        self.path = out_dir / "metrics.jsonl"
        self.main = main
        self.board = TensorBoard(out_dir, main)
        self.rate_key = rate_key
        self.units_per_step = units_per_step
        self.window: dict[str, float] = {}
        self.n = 0
        self.start = time.perf_counter()
        self.last: dict[str, float] = {"loss": float("nan"), "cosine": float("nan")}

    def add(self, values: dict[str, float]) -> None:
        """Add one step's values to the window."""
        for key, value in values.items():
            self.window[key] = self.window.get(key, 0.0) + value
        self.n += 1

    def flush(self, step: int, train_seconds: float, extra: dict[str, float] | None = None) -> None:
        """Write the window's means (rank 0, non-empty window) and start a new window."""
        if not self.main or not self.n:
            return
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        record: dict[str, float] = {"step": step}
        record.update({k: v / self.n for k, v in self.window.items()})
        record[self.rate_key] = self.n * self.units_per_step / elapsed
        record["train_seconds"] = train_seconds
        record.update(extra or {})
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        self.board.log(record)
        self.last = record
        self.window, self.n, self.start = {}, 0, time.perf_counter()

    def close(self) -> None:
        """Close the TensorBoard writer."""
        self.board.close()


def progress_bar(show: bool, start: int, end: int) -> tqdm[NoReturn]:
    """A ``tqdm`` bar over the steps ``start..end``; silent unless ``show`` and there is work."""
    from tqdm import tqdm

    return tqdm(
        total=end, initial=start, unit="step", dynamic_ncols=True, disable=not show or end <= start
    )
