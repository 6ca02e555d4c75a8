"""The teacher's outputs on disk: one file per clip of a fixed pool, reused every epoch.

Fresh clips never repeat, so a cache pays only when the run cycles over a pool of
``cache_clips`` clips: the teacher then runs once per clip instead of once per epoch. The
targets are stored in float16 and the training always uses the stored (rounded) values, so
a run gives the same numbers whether a clip's targets were just computed or read back.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rvm_ros.errors import RvmRosError
from rvm_ros.fsutil import atomic_write

CACHE_DTYPE = torch.float16


class CacheError(RvmRosError, ValueError):
    """A teacher cache folder written for another teacher, data or sizes."""

    cause = "distill_cache"


class TeacherCache:
    """Per-clip teacher targets in a folder (``meta.json`` + ``clip_<index>.safetensors``).

    Args:
        folder: Cache folder (created).
        key: What the targets depend on (teacher id, data, sizes, seed); a folder written
            with another key is refused.
    """

    def __init__(self, folder: str | Path, key: dict[str, object]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "meta.json"
        text = json.dumps(key, sort_keys=True)
        if meta.is_file():
            if json.loads(meta.read_text()) != json.loads(text):
                raise CacheError(
                    f"teacher cache {self.folder} was written for another teacher, data or "
                    "sizes; use a new teacher_cache folder"
                )
        else:
            atomic_write(meta, lambda tmp: tmp.write_text(text))
        self.hits = 0
        self.misses = 0

    def _path(self, index: int) -> Path:
        return self.folder / f"clip_{index:09d}.safetensors"

    def get(self, index: int) -> dict[str, torch.Tensor] | None:
        """Stored targets of clip ``index`` (float16 tensors), or None."""
        from safetensors.torch import load_file

        path = self._path(index)
        if not path.is_file():
            self.misses += 1
            return None
        self.hits += 1
        return load_file(str(path))

    def put(self, index: int, tensors: dict[str, torch.Tensor]) -> None:
        """Store the targets of clip ``index`` (atomically)."""
        from safetensors.torch import save_file

        data = {k: v.detach().to("cpu", CACHE_DTYPE).contiguous() for k, v in tensors.items()}
        atomic_write(self._path(index), lambda tmp: save_file(data, str(tmp)))
