"""Long horizon: 10,000 recurrent steps at constant memory and constant time per frame."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from rvm_ros.checkpoint import load_model

FRAMES = 10_000
BLOCK = 1_000
WARMUP = 1_000
# Allowed RSS growth after warm-up. A leak of one feature tensor per frame (17 x 64 float32)
# alone would add ~39 MiB over the 9,000 measured frames.
RSS_MARGIN = 4 * 1024 * 1024
TIME_RATIO = 1.10


def _rss_bytes() -> int:
    fields = Path("/proc/self/statm").read_text().split()
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def test_ten_thousand_steps_flat_memory_and_time() -> None:
    model = load_model("random:tiny:3")
    gen = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (16, 1, 64, 64, 3), dtype=torch.uint8, generator=gen)
    state = model.init_state(1, 64, 64)
    times = np.empty(FRAMES)
    rss: dict[int, int] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core: less interference from whatever else runs
    try:
        with torch.inference_mode():
            for i in range(FRAMES):
                t0 = time.perf_counter()
                feats, state = model.step(clip[i % 16], state)
                times[i] = time.perf_counter() - t0
                if (i + 1) % BLOCK == 0:
                    rss[i + 1] = _rss_bytes()
    finally:
        torch.set_num_threads(threads)

    assert torch.isfinite(state).all()
    assert torch.equal(feats, state)
    # the state stays bounded (gated convex update of normalised candidates)
    assert float(state.abs().max()) < 100.0

    base = rss[WARMUP]
    growth = max(rss.values()) - base
    assert growth <= RSS_MARGIN, (
        f"RSS grew by {growth / 2**20:.2f} MiB after warm-up: "
        + ", ".join(f"{k}: {v / 2**20:.1f} MiB" for k, v in rss.items())
    )

    # Lower quartile of each 1,000-frame block: the cost of a step when it runs unhindered.
    # It is robust to the load of other processes on a shared machine (medians of blocks
    # moved by up to 15% under load here, lower quartiles by 2-3%). Slowing down with the
    # frame index is the failure mode checked: it raises every late block, while a burst of
    # load from elsewhere raises some, so the fastest of the last three blocks is compared
    # with the fastest of the first three (one noisy block made a first-vs-last comparison
    # fail at 1.14x on a busy machine).
    q25 = [float(np.percentile(times[i : i + BLOCK], 25)) for i in range(0, FRAMES, BLOCK)]
    first, last = min(q25[:3]), min(q25[-3:])
    assert last <= TIME_RATIO * first, (
        f"lower-quartile time per frame: fastest of the first three {BLOCK}-frame blocks "
        f"{first * 1e3:.3f} ms, of the last three {last * 1e3:.3f} ms; block lower quartiles "
        "(ms): " + ", ".join(f"{q * 1e3:.3f}" for q in q25)
    )
