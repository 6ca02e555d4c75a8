"""Reaching a Ray cluster for ``rvm-ros replay --ray``: the options, the optional
``ray`` import, and joining (or starting) the cluster.

``ray`` is an optional dependency (``pip install rvm_ros[ray]``), imported only through
:func:`import_ray`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from types import ModuleType
from typing import TypedDict

from rvm_ros.replay.settings import ReplayError, ReplaySettings

__all__ = ["LOCAL", "ClusterInfo", "RayOptions", "RayUnavailable", "connect", "import_ray"]

LOCAL = "local"  # ADDRESS of a cluster started for the run (``--ray`` without ADDRESS)


class RayUnavailable(ReplayError):
    """``--ray`` was asked for but the ``ray`` package is not installed."""

    cause = "ray_missing"


class ClusterInfo(TypedDict, total=False):
    """What the driver learns about the cluster and its workers (for the report)."""

    address: str | None
    dashboard: str | None
    workers: int
    workers_started: int
    num_cpus: float
    num_gpus: float
    bags: int
    deaths: list[str]


@dataclass(frozen=True)
class RayOptions:
    """How to run on Ray.

    Attributes:
        address: ``local`` (start a cluster on this machine for the run, stopped after),
            ``auto`` (the cluster this machine belongs to), ``ray://host:port`` (Ray
            Client) or ``host:port`` (the head's GCS).
        workers: Actors to start; None: as many as the cluster's CPUs (and GPUs) allow,
            at most one per bag.
        cpus_per_worker: ``num_cpus`` of each actor; None: the replay's torch threads.
        gpus_per_worker: ``num_gpus`` of each actor (fractional: several share a GPU);
            None: 0.25 where the replay runs on CUDA (``--device cuda`` or the tensorrt
            backend), else 0.
        retries: Further tries of a bag whose worker died (or failed unexpectedly).
        local_cpus: CPUs of a ``local`` cluster (default: this machine's).
        start_timeout_s: How long to wait for the first worker to be placed.
        stop_timeout_s: After Ctrl-C, how long workers get to close their bags.
        announce: Print the cluster, dashboard and workers to stderr.
        progress: One progress bar over all bags (frames done / total).
    """

    address: str = LOCAL
    workers: int | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None
    retries: int = 2
    local_cpus: int | None = None
    start_timeout_s: float = 300.0
    stop_timeout_s: float = 60.0
    announce: bool = True
    progress: bool = True

    def resources(self, settings: ReplaySettings) -> tuple[float, float]:
        """``(num_cpus, num_gpus)`` of one worker."""
        cpus = self.cpus_per_worker if self.cpus_per_worker is not None else settings.threads
        gpus = self.gpus_per_worker
        if gpus is None:
            cuda = (settings.device or "").startswith("cuda") or settings.backend == "tensorrt"
            gpus = 0.25 if cuda else 0.0
        return float(cpus), float(gpus)


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line :class:`RayUnavailable`."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(
            f"--ray needs the ray package ({exc}); install it with: pip install 'rvm_ros[ray]'"
        ) from exc
    return ray


def connect(ray: ModuleType, options: RayOptions, info: ClusterInfo) -> bool:
    """Join or start the cluster; returns whether this run started it (and stops it)."""
    if ray.is_initialized():  # the caller's own connection (a notebook, the tests)
        ctx = ray.get_runtime_context()
        info.update({"address": ctx.gcs_address, "dashboard": _dashboard(ray)})
        return False
    kwargs: dict[str, object] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if options.address == LOCAL:
        kwargs.update(num_cpus=options.local_cpus or os.cpu_count() or 1)
    else:
        kwargs.update(address=options.address)
    try:
        ctx = ray.init(**kwargs)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError, ...
        raise ReplayError(
            f"cannot {'start' if options.address == LOCAL else 'reach'} the Ray cluster "
            f"{options.address}: {exc}",
            cause="ray_unreachable",
        ) from exc
    info.update(
        {
            "address": getattr(ctx, "address_info", {}).get("gcs_address") or options.address,
            "dashboard": getattr(ctx, "dashboard_url", None) or _dashboard(ray),
        }
    )
    return True


def _dashboard(ray: ModuleType) -> str | None:
    with contextlib.suppress(Exception):
        url = ray.get_runtime_context().dashboard_url  # not in every version
        return str(url) if url else None
    return None
