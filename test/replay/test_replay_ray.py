"""`rvm-ros replay --ray` against a real Ray cluster started by the tests.

One simulated two-node cluster (``ray.cluster_utils.Cluster``: a head and a worker node,
one CPU each, real raylet and worker processes on this machine) serves the whole
module. Faults are real: worker processes are killed with SIGKILL mid-bag, a node is
removed, the CLI process gets SIGINT.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from replay_helpers import FRAMES, small_settings

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.cli import main as cli_main
from rvm_ros.replay.jobs import JOURNAL
from rvm_ros.replay.ray_cluster import RayOptions
from rvm_ros.replay.settings import PARTIAL_MARKER
from rvm_ros.replay.workers import replay

ray = pytest.importorskip("ray", reason="ray is a dev dependency (requirements-dev.txt)")

LONG = 40  # frames of the bags a fault hits mid-way
SMALL = [
    "--checkpoint",
    "random:tiny",
    "--backend",
    "torch",
    "-p",
    "model_height=64",
    "-p",
    "model_width=64",
    "-p",
    "feature_dtype=float32",
    "-p",
    "track_grid=3",
    "--no-visuals",
    "--no-progress",
]
# Timing fields: the only parts of a report that differ between two runs.
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


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head and one worker node (1 CPU each), connected as this process's Ray."""
    from ray.cluster_utils import Cluster

    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a throw-away cluster on 127.0.0.1
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4},
        },
    )
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def _opts(**kw: Any) -> RayOptions:
    kw.setdefault("announce", False)
    kw.setdefault("progress", False)
    return RayOptions(address="auto", **kw)


def _digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` -> content hash (timing-bearing files normalised)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(root))
        if p.name == "report.json":
            data = _strip(json.loads(p.read_text()))
            out[rel] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        elif p.name in ("report.md", "latency_histogram.png"):
            out[rel] = "(timings)"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _frames(folder: Path) -> int:
    with bags.BagReader(folder / "features") as reader:
        return sum(1 for m in reader.messages() if m.topic.endswith("/features"))


class _Killer(threading.Thread):
    """SIGKILLs the worker process of a bag attempt once its features bag exists.

    Attempts are the hidden ``.<bag>.try-<host>-<pid>-<nonce>`` folders of the run.
    """

    def __init__(self, root: Path, label: str, times: int) -> None:
        super().__init__(daemon=True)
        self.root, self.label, self.times = root, label, times
        self.killed: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        seen: set[str] = set()
        while not self.done.is_set() and len(self.killed) < self.times:
            for stage in self.root.glob(f".{self.label}.try-*"):
                if stage.name in seen or not (stage / "features").exists():
                    continue
                seen.add(stage.name)
                pid = int(stage.name.rsplit("-", 2)[1])
                if stage.exists():
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
            time.sleep(0.01)


@pytest.fixture(scope="module")
def local_run(bag_factory: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: three bags replayed in this process (``--workers 1``), with visuals."""
    out = tmp_path_factory.mktemp("local") / "out"
    paths = [
        bag_factory("mcap", False),
        bag_factory("sqlite3", True),
        bag_factory("mcap", False, 8),
    ]
    assert replay(paths, out, small_settings(visuals=True)).complete
    return out


def test_ray_outputs_equal_the_local_run(
    cluster: Any, local_run: Path, bag_factory: Callable[..., Path], tmp_path: Path
) -> None:
    paths = [
        bag_factory("mcap", False),
        bag_factory("sqlite3", True),
        bag_factory("mcap", False, 8),
    ]
    outcome = replay(paths, tmp_path / "out", small_settings(visuals=True), ray=_opts(workers=2))
    assert outcome.complete and outcome.out_dir == tmp_path / "out"
    # byte for byte: features bags, videos, PCA strips; reports apart from timings
    assert _digest(tmp_path / "out") == _digest(local_run)
    assert not (tmp_path / "out" / JOURNAL).exists()
    report = outcome.report
    assert [Path(s["bag"]) for s in report["bags"]] == paths  # every bag once, in order
    nodes = {s["worker"]["node_id"] for s in report["bags"]}
    assert len(nodes) == 2  # both nodes of the simulated cluster took bags
    cl = report["cluster"]
    assert cl["workers"] == 2 and cl["worker_deaths"] == [] and cl["retried_bags"] == 0
    assert sum(n["frames"] for n in cl["nodes"].values()) == report["processed"] == 2 * FRAMES + 8
    assert sum(n["bags"] for n in cl["nodes"].values()) == 3
    assert all(n["fps"] > 0 for n in cl["nodes"].values())
    assert cl["model_loads"] == 2  # once per worker, not once per bag
    assert all(
        s["worker"]["attempts"] == 1 and s["worker"]["duration_s"] > 0 for s in report["bags"]
    )


def test_worker_killed_mid_bag_is_retried_on_another(
    cluster: Any, bag_factory: Callable[..., Path], tmp_path: Path
) -> None:
    long, short = bag_factory("mcap", False, LONG), bag_factory("mcap", False)
    out = tmp_path / "out"
    killer = _Killer(tmp_path / "out.partial", long.name, times=1)
    killer.start()
    try:
        outcome = replay([long, short], out, small_settings(), ray=_opts(workers=2, retries=2))
    finally:
        killer.done.set()
    assert len(killer.killed) == 1
    assert outcome.complete  # the retry finished it
    sec = outcome.report["bags"][0]
    assert sec["worker"]["attempts"] == 2 and sec["worker"]["pid"] != killer.killed[0]
    assert "died" in sec["worker"]["failed_attempts"][0]
    assert outcome.report["bags"][1]["worker"]["attempts"] == 1
    assert len(outcome.report["cluster"]["worker_deaths"]) == 1
    assert _frames(out / long.name) == LONG and _frames(out / short.name) == FRAMES
    assert not list(out.glob(".*.try-*"))  # the killed attempt's partial output is gone


def test_node_removed_mid_bag_is_retried(
    cluster: Any, bag_factory: Callable[..., Path], tmp_path: Path
) -> None:
    node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    # nine long bags for three workers: enough work that the new node's worker (placed
    # last, it starts a fresh process) takes a bag before the other two have run them all
    # (with six bags of 40 frames a quiet machine sometimes finished every bag first)
    paths = [
        bag_factory(storage, compressed, frames)
        for frames in (3 * LONG - 2, 3 * LONG - 1, 3 * LONG)
        for storage, compressed in (("mcap", False), ("sqlite3", False), ("mcap", True))
    ]
    root = tmp_path / "out.partial"
    result: dict[str, Any] = {}
    raylet = node.all_processes["raylet"][0].process.pid

    def on_node(pid: int) -> bool:  # a worker process of the node to be removed
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return int(stat.rsplit(")", 1)[1].split()[1]) == raylet

    def remove_when_all_run() -> None:
        # remove the node while its worker is mid-bag (its attempt has a features bag)
        while "outcome" not in result:
            stages = [p.parent for p in root.glob(".*.try-*/features")]
            if any(on_node(int(p.name.rsplit("-", 2)[1])) for p in stages):
                cluster.remove_node(node, allow_graceful=False)
                result["removed"] = True
                return
            time.sleep(0.01)

    t = threading.Thread(target=remove_when_all_run, daemon=True)
    t.start()
    # retries 3: a replacement placed before the cluster has noticed the dead node dies too
    opts = _opts(workers=3, retries=3)
    result["outcome"] = replay(paths, tmp_path / "out", small_settings(), ray=opts)
    t.join(timeout=30)
    outcome = result["outcome"]
    why = json.dumps([s.get("worker") for s in outcome.report["bags"]], default=str)
    assert result.get("removed"), why
    assert outcome.complete, why
    retried = [s for s in outcome.report["bags"] if s["worker"]["attempts"] > 1]
    assert len(retried) == 1, why  # the bag of the removed node's worker, and only that one
    assert outcome.report["cluster"]["worker_deaths"]
    for p in paths:
        assert _frames(tmp_path / "out" / p.name) == int(p.name.rsplit("_", 1)[1])


def _bag_without_images(path: Path) -> Path:
    store = bags.typestore()
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""
    )
    with bags.BagWriter(path) as writer:
        writer.write("/h", "std_msgs/msg/Header", header, 0)
    return path


def test_failing_bags_are_reported_while_others_finish(
    cluster: Any,
    bag_factory: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good, doomed = bag_factory("mcap", False), bag_factory("mcap", False, LONG)
    bad = _bag_without_images(tmp_path / "noimages")
    out = tmp_path / "out"
    killer = _Killer(tmp_path / "out.partial", doomed.name, times=2)  # every try of it
    killer.start()
    try:
        code = cli_main(
            ["replay", str(good), str(bad), str(doomed), "--out", str(out), "--ray",
             cluster.address, "--workers", "2", "--retries", "1", *SMALL]
        )  # fmt: skip
    finally:
        killer.done.set()
    assert code == 1
    assert len(killer.killed) == 2
    err = capsys.readouterr().err
    assert f"failed: {bad}" in err and "no sensor_msgs/Image" in err
    assert f"failed: {doomed}" in err and "failed 2 tries" in err
    partial = tmp_path / "out.partial"
    assert not out.exists() and (partial / PARTIAL_MARKER).is_file()
    report = json.loads((partial / "report.json").read_text())
    ok, refused, lost = report["bags"]
    assert ok["complete"] and _frames(partial / good.name) == FRAMES
    assert refused["worker"]["attempts"] == 1  # a refused bag is not retried
    assert lost["worker"]["attempts"] == 2 and not lost["complete"]
    # the doomed bag's folder holds nothing that looks like output
    assert sorted(p.name for p in (partial / doomed.name).iterdir()) == ["report.json", "report.md"]
    assert not list(partial.glob(".*.try-*"))


def test_interrupt_keeps_finished_bags_and_resume_completes(
    cluster: Any, bag_factory: Callable[..., Path], tmp_path: Path
) -> None:
    # Long enough that the Ctrl-C, sent when the first short bag is done, lands before the
    # others finish even on a quiet machine (at 40 frames all four sometimes finished first).
    long = 3 * LONG  # 120: the most frames the sample video gives
    paths = [bag_factory("mcap", False), bag_factory("mcap", False, long)]
    paths += [bag_factory("sqlite3", False, long), bag_factory("mcap", True, long)]
    out = tmp_path / "out"
    partial = tmp_path / "out.partial"
    cmd = [sys.executable, "-c", "import sys; from rvm_ros.cli import main; sys.exit(main())"]
    cmd += ["replay", *map(str, paths), "--out", str(out), "--ray", cluster.address]
    cmd += ["--workers", "2", *SMALL]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((partial / JOURNAL).glob("cam_*.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    report = json.loads((partial / "report.json").read_text())
    assert report["interrupted"] and not report["complete"]
    done = {Path(s["bag"]).name for s in report["bags"] if s.get("complete")}
    assert paths[0].name in done and len(done) < len(paths)
    assert not list(partial.glob(".*.try-*"))
    for s in report["bags"]:  # a folder that says complete is complete; others say not
        name = Path(s["bag"]).name
        sub = json.loads((partial / name / "report.json").read_text())
        assert sub["complete"] == (name in done)
        if name in done:
            processed = sum(c["processed"] for c in sub["cameras"].values())
            assert _frames(partial / name) == processed > 0
    resumed = replay(paths, out, small_settings(), resume=True, ray=_opts(workers=2))
    assert resumed.complete and resumed.out_dir == out and not partial.exists()
    assert resumed.report["cluster"]["resumed_bags"] == len(done)
    for p in paths:
        assert _frames(out / p.name) == (FRAMES if p == paths[0] else long)
    ran = [s for s in resumed.report["bags"] if "worker" in s and Path(s["bag"]).name not in done]
    assert len(ran) == len(paths) - len(done)
