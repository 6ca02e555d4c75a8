"""The ``cluster`` entry of a ``--ray`` run's report: where each bag ran, per-node
throughput, worker deaths and retries."""

from __future__ import annotations

from collections.abc import Sequence

from rvm_ros.replay.ray_cluster import ClusterInfo
from rvm_ros.replay.records import BagSection, ClusterSummary, NodeStats

__all__ = ["cluster_summary"]


def cluster_summary(
    sections: Sequence[BagSection], wall: float, info: ClusterInfo, resumed: int
) -> ClusterSummary:
    """The report's ``cluster`` entry: where each bag ran, per-node throughput, faults."""
    loads = [s["model_load_s"] for s in sections if s.get("worker", {}).get("model_loaded")]
    return {
        "address": info.get("address"),
        "dashboard": info.get("dashboard"),
        "workers": info.get("workers"),
        "workers_started": info.get("workers_started"),
        "num_cpus_per_worker": info.get("num_cpus"),
        "num_gpus_per_worker": info.get("num_gpus"),
        "nodes": _node_stats(sections),
        "resumed_bags": resumed,
        "retried_bags": sum(1 for s in sections if (s.get("worker") or {}).get("attempts", 1) > 1),
        "worker_deaths": list(info.get("deaths", [])),
        "model_loads": len(loads),
        "model_load_s": loads,
        "wall_s": wall,
    }


def _node_stats(sections: Sequence[BagSection]) -> dict[str, NodeStats]:
    """Bags, frames, busy time, workers and frames/s per node, sorted by node."""
    nodes: dict[str, NodeStats] = {}
    pids: dict[str, set[int | None]] = {}
    for s in sections:
        w = s.get("worker") or {}
        if "node" not in w:
            continue
        key = f"{w['node']} ({str(w.get('node_id'))[:8]})"  # several nodes may share an IP
        n = nodes.setdefault(
            key, {"bags": 0, "frames": 0, "busy_s": 0.0, "workers": 0, "fps": None}
        )
        n["bags"] += 1
        n["frames"] += sum(int(c.get("processed", 0)) for c in s.get("cameras", {}).values())
        n["busy_s"] += float(w.get("duration_s", 0.0))
        pids.setdefault(key, set()).add(w.get("pid"))
    for key, n in nodes.items():
        n["workers"] = len(pids[key])
        n["fps"] = n["frames"] / n["busy_s"] if n["busy_s"] > 0 else None
    return dict(sorted(nodes.items()))
