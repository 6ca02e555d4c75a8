"""Two gloo processes on this CPU running one job, compared with one process: the harness
of the training and distillation DDP tests."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

#: ``job(out_dir, on_step)``: run a training writing to ``out_dir``, reporting every step.
Job = Callable[[Path, Callable[[int, dict[str, float]], None]], object]


def need_gloo() -> None:
    """Skip the test when this torch build has no gloo backend."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available in this torch build")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(rank: int, world: int, port: int, job: Job, out: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    losses: dict[int, float] = {}
    try:
        job(Path(out), lambda s, v: losses.__setitem__(s, v["loss"]))
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    queue.put((rank, losses))


def single_losses(job: Job, out: Path) -> dict[int, float]:
    """The job in this process; its loss per step."""
    losses: dict[int, float] = {}
    job(out, lambda s, v: losses.__setitem__(s, v["loss"]))
    return losses


def run_ranks(job: Job, out: Path, world: int = 2) -> dict[int, dict[int, float]]:
    """The job in ``world`` spawned gloo processes; ``{rank: {step: loss}}``.

    ``job`` must be a module-level function (it is pickled into the processes).
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [
        ctx.Process(target=_rank_main, args=(r, world, port, job, str(out), queue))
        for r in range(world)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return dict(queue.get(timeout=5) for _ in procs)


def assert_same_losses(
    results: dict[int, dict[int, float]], single: dict[int, float], steps: int
) -> None:
    """Every rank logged the all-reduced mean loss of the global batch: one process's."""
    for rank in results:
        for step in range(1, steps + 1):
            assert results[rank][step] == pytest.approx(single[step], rel=1e-5, abs=1e-6)


def assert_close_weights(
    single: Path, ddp: Path, skip: Callable[[str], bool], at_least: float
) -> None:
    """The two checkpoints agree on every tensor but the skipped ones; at least ``at_least``
    tensors (a count, or a fraction of all when below 1) are compared."""
    a, b = load_file(single), load_file(ddp)
    checked = [k for k in a if not skip(k)]
    assert len(checked) > (at_least * len(a) if at_least < 1 else at_least)
    for key in checked:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
