"""`rvm-ros replay`: run bags through the node's processing offline and report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from rvm_ros.cli import CliError

if TYPE_CHECKING:
    from rvm_ros.replay.ray_cluster import RayOptions
    from rvm_ros.replay.records import ClusterSummary, RunReport
    from rvm_ros.replay.settings import ReplaySettings

# The node's backend / precision choices (test/cli/test_replay_args.py keeps them equal to
# the parameter table's; importing rvm_ros.runtime here would load torch for --help).
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt", "openvino")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def _param(text: str) -> tuple[str, object]:
    # NAME=VALUE, or ROS style NAME:=VALUE
    key, sep, value = text.partition(":=") if ":=" in text else text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"{key}: cannot parse value {value!r}: {exc}") from exc
    return key.strip(), parsed


def _run(args: argparse.Namespace) -> int:
    from rvm_ros.replay.settings import ReplayError, ReplaySettings
    from rvm_ros.replay.workers import replay

    if args.config is not None and not Path(args.config).is_file():
        raise CliError(f"--config {args.config}: no such file")
    from rvm_ros.cli.validate import at_least

    at_least(args, 1, "threads")
    settings = ReplaySettings(
        config=Path(args.config) if args.config else None,
        params=dict(args.param or []),
        checkpoint=args.checkpoint,
        backend=args.backend,
        precision=args.precision,
        device=args.device,
        threads=args.threads,
        visuals=not args.no_visuals,
        progress=not args.no_progress and sys.stderr.isatty(),
        node_name=args.node_name,
    )
    ray = _ray_options(args, settings)
    workers = 1 if args.workers is None or ray is not None else args.workers
    try:
        outcome = replay(
            args.bags,
            args.out,
            settings,
            force=args.force,
            workers=workers,
            resume=args.resume,
            ray=ray,
        )
    except ReplayError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt as exc:
        print(f"rvm-ros replay: {exc}", file=sys.stderr)
        return 130
    report = outcome.report
    print(summary_table(report))
    for err in report.get("read_errors", []):
        print(f"read error: {err}", file=sys.stderr)
    for section in report.get("bags", []):
        if section.get("error"):
            print(f"failed: {section['bag']}: {section['error']}", file=sys.stderr)
    if "cluster" in report:
        print(cluster_table(report["cluster"]))
    state = "complete" if outcome.complete else "INCOMPLETE (marked PARTIAL)"
    print(f"report: {outcome.out_dir / 'report.md'} ({state})")
    if not outcome.complete:
        return 1
    return 1 if report.get("read_errors") else 0


def _ray_options(args: argparse.Namespace, settings: ReplaySettings) -> RayOptions | None:
    """The Ray options of ``--ray`` (None without it); checks the numbers."""
    if args.ray is None:
        for flag in ("worker_cpus", "worker_gpus"):
            if getattr(args, flag) is not None:
                raise CliError(f"--{flag.replace('_', '-')} needs --ray")
        return None
    from rvm_ros.replay.ray_cluster import RayOptions, import_ray

    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers must be >= 1, got {args.workers}")
    if args.retries < 0:
        raise CliError(f"--retries must be >= 0, got {args.retries}")
    for flag in ("worker_cpus", "worker_gpus"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            raise CliError(f"--{flag.replace('_', '-')} must be >= 0, got {value}")
    import_ray()  # a one-line error now when ray is missing
    return RayOptions(
        address=args.ray,
        workers=args.workers,
        cpus_per_worker=args.worker_cpus,
        gpus_per_worker=args.worker_gpus,
        retries=args.retries,
        announce=True,
        progress=settings.progress,
    )


def cluster_table(cluster: ClusterSummary) -> str:
    """Per-node bags, frames and throughput of a ``--ray`` run."""
    rows = [("node", "workers", "bags", "frames", "busy s", "frames/s")]
    for node, n in cluster.get("nodes", {}).items():
        fps = n.get("fps")
        rows.append(
            (
                node,
                str(n["workers"]),
                str(n["bags"]),
                str(n["frames"]),
                f"{n['busy_s']:.1f}",
                "-" if fps is None else f"{fps:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) for r in rows]
    deaths = cluster.get("worker_deaths") or []
    lines.append(
        f"ray: {cluster.get('workers_started')} workers started, {len(deaths)} died, "
        f"{cluster.get('retried_bags')} bags retried, {cluster.get('resumed_bags')} resumed"
    )
    return "\n".join(lines)


def summary_table(report: RunReport) -> str:
    """A short plain-text table of the per-camera results of a replay report."""
    rows = [("bag", "camera", "in", "done", "skipped", "resets", "p50 ms", "p99 ms", "fps")]
    for section in report.get("bags", []):
        for cam, c in section.get("cameras", {}).items():
            lat = c["step_latency_ms"]
            rows.append(
                (
                    Path(section["bag"]).name,
                    cam,
                    str(c["frames_in"]),
                    str(c["processed"]),
                    str(c["skipped_total"]),
                    str(c["reset_total"]),
                    "-" if lat["p50"] is None else f"{lat['p50']:.1f}",
                    "-" if lat["p99"] is None else f"{lat['p99']:.1f}",
                    "-" if c["throughput_fps"] is None else f"{c['throughput_fps']:.1f}",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) for r in rows)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``replay``."""
    p = sub.add_parser(
        "replay",
        help="run bags through the node's processing offline; features bag + report",
        description="Replay the image topics of rosbag2 files (mcap or sqlite3, Image or "
        "CompressedImage) through the node's own processing, deterministically and as fast "
        "as the model allows. Writes DIR/features/ (FeatureMap + TrackedPoints), "
        "DIR/report.json, DIR/report.md and plots.",
    )
    _add_inputs(p)
    _add_model(p)
    _add_parallel(p)
    _add_ray(p)
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")
    p.add_argument("--no-visuals", action="store_true", help="skip plots and videos")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _add_inputs(p: argparse.ArgumentParser) -> None:
    """The bags, the output folder and the node's parameters."""
    p.add_argument("bags", nargs="+", metavar="BAG", help="rosbag2 folders or .mcap/.db3 files")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--config", default=None, help="node parameters file (config/rvm.yaml)")
    p.add_argument(
        "--param",
        "-p",
        action="append",
        type=_param,
        metavar="NAME=VALUE",
        help="override a node parameter (e.g. -p model_height=128, "
        "-p cameras.front.topic=/cam/image_raw); repeatable",
    )
    p.add_argument(
        "--node-name",
        default="rvm",
        help="node whose section of --config applies; outputs go to /NODE/<camera>/...",
    )


def _add_model(p: argparse.ArgumentParser) -> None:
    """Checkpoint, backend, precision, device and threads."""
    p.add_argument(
        "--checkpoint",
        default=None,
        help="default: the config's, else builtin:default (the shipped model)",
    )
    p.add_argument("--backend", default=None, choices=BACKENDS)
    p.add_argument(
        "--precision",
        default=None,
        choices=PRECISIONS,
        help="the node's precision parameter (int8: onnxruntime / openvino)",
    )
    p.add_argument("--device", default=None, help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def _add_parallel(p: argparse.ArgumentParser) -> None:
    """Parallel bags and ``--resume``."""
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="bags replayed in parallel: local processes (default 1), or with --ray the "
        "Ray workers (default: as many as the cluster's CPUs/GPUs allow)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the DIR.partial of an interrupted or failed run: keep the bags it "
        "finished, replay the others (same bags and options)",
    )


def _add_ray(p: argparse.ArgumentParser) -> None:
    """The ``--ray`` group."""
    ray = p.add_argument_group("Ray (docs/REPLAY_AT_SCALE.md; needs: pip install 'rvm_ros[ray]')")
    ray.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="replay the bags on a Ray cluster: 'auto', 'ray://HOST:PORT', 'HOST:PORT'; "
        "without ADDRESS a cluster is started on this machine for the run. DIR must be "
        "on a filesystem every node reaches",
    )
    ray.add_argument(
        "--retries",
        type=int,
        default=2,
        help="further tries of a bag whose worker died (default 2)",
    )
    ray.add_argument(
        "--worker-cpus",
        type=float,
        default=None,
        help="num_cpus of each Ray worker (default: --threads)",
    )
    ray.add_argument(
        "--worker-gpus",
        type=float,
        default=None,
        help="num_gpus of each Ray worker, fractional to share a GPU (default 0.25 with "
        "--device cuda or --backend tensorrt, else 0)",
    )
