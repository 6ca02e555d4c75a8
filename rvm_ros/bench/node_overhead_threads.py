"""Per-thread CPU time, page faults and resident memory of this process, from ``/proc``.

The node-overhead benchmark reads these at the start and the end of its measured window
and attributes the difference to the node's threads (executor, inference, Fast DDS).
Linux only.
"""

from __future__ import annotations

import os

__all__ = ["cpu_delta", "rss_mib", "thread_cpu_s", "thread_stats"]


def rss_mib() -> float:
    """Resident memory of this process in MiB (NaN when ``/proc`` does not say)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def thread_cpu_s() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every thread of this process: tid -> (name, s)."""
    return {t: (n, c) for t, (n, c, _) in thread_stats().items()}


def thread_stats() -> dict[int, tuple[str, float, int]]:
    """Per thread of this process: tid -> (name, CPU seconds, minor page faults)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float, int]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                text = f.read()
        except OSError:  # the thread ended
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick, int(fields[7]))
    return out


def cpu_delta(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[int, tuple[str, float]]:
    """CPU seconds each thread of ``after`` spent since ``before`` (a new thread: all of it).

    Args:
        before: `thread_cpu_s` at the start of a window.
        after: `thread_cpu_s` at its end.
    """
    return {t: (n, c - before.get(t, (n, 0.0))[1]) for t, (n, c) in after.items()}
