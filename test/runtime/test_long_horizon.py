"""The exported ONNX step over 10,000 frames: flat memory, bounded finite state."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rvm_ros.imaging.synthetic import synthetic_frames
from rvm_ros.model import RVM
from rvm_ros.runtime import create_encoder


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 2**20


def test_onnx_runs_10000_frames_with_flat_memory(tiny_model: RVM, onnx_cache: Path) -> None:
    enc = create_encoder(
        tiny_model, backend="onnxruntime", height=32, width=32, max_batch=2, cache_dir=onnx_cache
    )
    video = synthetic_frames(50, 2, 32, 32, seed=3)  # cycled: 10,000 steps
    names = ["a", "b"]
    rss: dict[int, float] = {}
    norms = []
    for t in range(10_000):
        feats = enc.step(video[t % len(video)], names)
        if t in (999, 9_999):
            rss[t] = _rss_mb()
        if t % 1000 == 999:
            assert np.isfinite(feats).all(), f"non-finite features at step {t}"
            norms.append(float(np.linalg.norm(feats, axis=-1).mean()))
    # memory after 1,000 and after 10,000 steps: no growth beyond allocator noise
    assert rss[9_999] - rss[999] < 16.0, rss
    # the gated state stays bounded (a convex mix of the old state and a LayerNormed update)
    assert max(norms) < 10 * min(norms)
    assert enc.cameras == names
