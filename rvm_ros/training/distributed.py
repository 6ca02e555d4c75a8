"""This process's place in a run: one process, or a rank of a torchrun (DDP) job."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Dist", "barrier", "mean_over_ranks", "setup_distributed", "wrap_ddp"]


@dataclass(frozen=True)
class Dist:
    """Rank, world size and device of this process.

    Attributes:
        rank: Global rank (0 in a single process).
        world: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
        device: Where the model runs.
    """

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the one that writes the run folder)."""
        return self.rank == 0


def setup_distributed() -> Dist:
    """Read torchrun's environment; join the process group when there is more than one rank
    (NCCL on GPUs, gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(rank, world, local, device)


def wrap_ddp(module: nn.Module, dist: Dist) -> nn.Module:
    """``module`` itself in one process, else wrapped in DistributedDataParallel."""
    if dist.world == 1:
        return module
    return nn.parallel.DistributedDataParallel(
        module, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
    )


def mean_over_ranks(values: torch.Tensor, dist: Dist) -> torch.Tensor:
    """``values`` averaged over the ranks, in place (a no-op in one process)."""
    if dist.world > 1:
        torch.distributed.all_reduce(values)  # gloo/nccl on float64 CPU tensors (gloo)
        values /= dist.world
    return values


def barrier(dist: Dist) -> None:
    """Wait for every rank (a no-op in one process)."""
    if dist.world > 1:
        torch.distributed.barrier()
