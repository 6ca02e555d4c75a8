"""`rvm-ros replay --ray` against local worker processes (the docs/BENCHMARKS.md figures).

``python -m rvm_ros.bench.replay_ray --bags 8 --rounds 3 --work /tmp/ray_bench`` makes
``--bags`` demo-sized bags (120 frames of ``bikes.mp4`` at 320 px, like ``make demo``),
then, in one run:

1. times the CLI end to end (a fresh process each: interpreter, cluster start, model
   load and all) for ``--workers 1``, ``--ray --workers 1``, ``--ray --workers 2`` and
   ``--workers 2``, alternated in rounds (medians and same-round ratios);
2. replays the bags on a simulated multi-node cluster (``ray.cluster_utils.Cluster``,
   two nodes) and compares every output file with the ``--workers 1`` run;
3. replays them again on that cluster while worker processes are killed at random
   moments, and counts lost, duplicated and partial-but-complete-looking bags.

Prints one JSON document (with the load average before and after each step).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TypedDict

CLI = "import sys; from rvm_ros.cli import main; sys.exit(main())"
VOLATILE = {
    "wall_s",
    "timing_s",
    "throughput_fps",
    "model_step_fps",
    "overhead_fraction",
    "warmup_s",
    "model_load_s",
    "step_latency_ms",
    "worker",
    "cluster",
    "plots",
}


class CliRun(TypedDict):
    """One timed CLI run: wall time and the load average before and after."""

    wall_s: float
    load_before: list[float]
    load_after: list[float]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def make_bags(work: Path, count: int, frames: int, width: int) -> list[Path]:
    """``count`` demo-sized bags (the same clip of bikes.mp4, one camera)."""
    from rvm_ros.bags.make_bag import make_bag
    from rvm_ros.imaging.video import find_sample_video

    video = find_sample_video("bikes.mp4")
    paths = []
    for i in range(count):
        out = work / "bags" / f"drive{i:02d}"
        if not out.exists():
            make_bag([video], out, "mcap", max_frames=frames, width=width)
        paths.append(out)
    return paths


def _cli(bags: list[Path], out: Path, extra: list[str], replay_args: list[str]) -> CliRun:
    cmd = [sys.executable, "-c", CLI, "replay", *map(str, bags), "--out", str(out), "--force"]
    cmd += [*replay_args, *extra, "--no-progress"]
    load = _load()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(extra)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {"wall_s": wall, "load_before": load, "load_after": _load()}


def digest(root: Path) -> dict[str, str]:
    """File -> hash; reports without their timing fields; timing plots left out."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name in ("report.md", "latency_histogram.png"):
            continue
        rel = str(p.relative_to(root))
        if p.name == "report.json":
            data = json.dumps(_strip(json.loads(p.read_text())), sort_keys=True).encode()
        else:
            data = p.read_bytes()
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


def _strip(value: object) -> object:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def timing(work: Path, bags: list[Path], rounds: int, replay_args: list[str]) -> dict[str, object]:
    """Wall times of the four ways, alternated (round r starts at variant r)."""
    variants = {
        "workers1": ["--workers", "1"],
        "ray1": ["--ray", "--workers", "1"],
        "ray2": ["--ray", "--workers", "2"],
        "workers2": ["--workers", "2"],
    }
    names = list(variants)
    runs: dict[str, list[CliRun]] = {n: [] for n in names}
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            runs[name].append(_cli(bags, work / f"out_{name}", variants[name], replay_args))
    med = {n: statistics.median(x["wall_s"] for x in v) for n, v in runs.items()}
    ratios = {
        "ray1_over_workers1": [
            a["wall_s"] / b["wall_s"] for a, b in zip(runs["ray1"], runs["workers1"], strict=True)
        ],
        "ray2_speedup_over_ray1": [
            a["wall_s"] / b["wall_s"] for a, b in zip(runs["ray1"], runs["ray2"], strict=True)
        ],
    }
    return {"runs": runs, "median_wall_s": med, "ratios": ratios}


def _killer(root: Path, kills: int, seed: int, stop: threading.Event, killed: list[int]) -> None:
    rng = random.Random(seed)
    while len(killed) < kills and not stop.is_set():
        time.sleep(rng.uniform(0.5, 4.0))  # a random moment
        stages = sorted(root.glob(".*.try-*"))
        if not stages:
            continue
        pid = int(rng.choice(stages).name.rsplit("-", 2)[1])
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass


def cluster_checks(
    work: Path, bags: list[Path], replay_args: list[str], kills: int, seed: int
) -> dict[str, object]:
    """Simulated two-node cluster: same outputs as ``--workers 1``; then random kills."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    reference = digest(work / "out_workers1")
    result: dict[str, object] = {}
    try:
        out = work / "out_multinode"
        run = _cli(bags, out, ["--ray", cluster.address, "--workers", "2"], replay_args)
        report = json.loads((out / "report.json").read_text())
        result["multinode"] = {
            **run,
            "identical_to_workers1": digest(out) == reference,
            "nodes": {k: v["bags"] for k, v in report["cluster"]["nodes"].items()},
            "node_ids": len({s["worker"]["node_id"] for s in report["bags"]}),
            "bags_listed_once": sorted(s["bag"] for s in report["bags"]) == sorted(map(str, bags)),
        }
        out = work / "out_faults"
        stop, killed = threading.Event(), list[int]()
        killer = threading.Thread(
            target=_killer, args=(work / "out_faults.partial", kills, seed, stop, killed)
        )
        killer.start()
        try:
            run = _cli(
                bags, out, ["--ray", cluster.address, "--workers", "2", "--retries", "5"],
                replay_args,
            )  # fmt: skip
        finally:
            stop.set()
            killer.join()
        result["faults"] = {**run, "killed": len(killed), **_fault_counts(out, bags, reference)}
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
    return result


def _fault_counts(out: Path, bags: list[Path], reference: dict[str, str]) -> dict[str, object]:
    report = json.loads((out / "report.json").read_text())
    listed = [s["bag"] for s in report["bags"]]
    names = {str(b) for b in bags}
    lost = [
        b for b in names if not any(s["bag"] == b and s.get("complete") for s in report["bags"])
    ]
    got = digest(out)
    partial_complete = [  # a bag folder whose report says complete but whose files differ
        b.name
        for b in bags
        if json.loads((out / b.name / "report.json").read_text()).get("complete")
        and any(got.get(k) != v for k, v in reference.items() if k.startswith(b.name + "/"))
    ]
    return {
        "lost": len(lost),
        "duplicated": len(listed) - len(set(listed)),
        "partial_looking_complete": len(partial_complete),
        "retried_bags": report["cluster"]["retried_bags"],
        "worker_deaths": len(report["cluster"]["worker_deaths"]),
        "identical_to_workers1": got == reference,
        "stale_attempt_folders": len(list(out.glob(".*.try-*"))),
    }


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/rvm_ray_bench")
    ap.add_argument("--bags", type=int, default=8)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default="builtin:default")
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    bags = make_bags(work, args.bags, args.frames, args.width)
    replay_args = [
        "--checkpoint", args.checkpoint, "-p", "model_height=128", "-p", "model_width=224",
        "-p", "track_corners=64", "--threads", "1",
    ]  # fmt: skip
    import ray

    out: dict[str, object] = {
        "bags": args.bags,
        "frames_per_bag": args.frames,
        "checkpoint": args.checkpoint,
        "ray": ray.__version__,
        "cpus": os.cpu_count(),
    }
    if not args.skip_timing:
        out["timing"] = timing(work, bags, args.rounds, replay_args)
    elif not (work / "out_workers1").is_dir():
        _cli(bags, work / "out_workers1", ["--workers", "1"], replay_args)
    out.update(cluster_checks(work, bags, replay_args, args.kills, args.seed))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
