"""Benchmarks: the runtime step (:mod:`.runtime`), the node's overhead over DDS
(:mod:`.node_overhead`, needs rclpy), bag replay throughput (:mod:`.replay_throughput`).

Nothing in the library imports this package; the CLI and examples do.
"""

from __future__ import annotations

__all__: list[str] = []
