"""SIGTERM during a replay is handled like Ctrl-C: closed features bag, report, marker.

Run in a child process: without the handling, SIGTERM kills the process outright (no
report, a features bag without metadata.yaml), which must not take pytest with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.replay.settings import PARTIAL_MARKER

_CHILD = r"""
import os, signal, sys
from rvm_ros.pipeline import Processor
from rvm_ros.cli import main

calls = {"n": 0}
original = Processor.process

def process(self, batch):
    if "replay_warmup" not in self.cameras:
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # as a supervisor stopping the job would
    return original(self, batch)

Processor.process = process
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_leaves_a_marked_readable_partial_output(
    bag_factory: object, tmp_path: Path
) -> None:
    bag = bag_factory()  # type: ignore[operator]
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            "replay",
            str(bag),
            "--out",
            str(out),
            "--checkpoint",
            "random:tiny",
            "--backend",
            "torch",
            "-p",
            "model_height=64",
            "-p",
            "model_width=64",
            "--no-visuals",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 130, (proc.returncode, proc.stderr[-2000:])
    assert "interrupted; partial output in" in proc.stderr
    assert "Traceback" not in proc.stderr
    partial = tmp_path / "out.partial"
    assert not out.exists()
    assert (partial / PARTIAL_MARKER).is_file()
    report = json.loads((partial / "report.json").read_text())
    assert report["complete"] is False and report["interrupted"] is True
    processed = next(iter(report["cameras"].values()))["processed"]
    assert 3 <= processed < 12  # stopped early, what was done is kept
    # the features bag was closed: metadata.yaml written, every processed frame readable
    assert (partial / "features" / "metadata.yaml").is_file()
    with bags.BagReader(partial / "features") as reader:
        assert reader.errors == []
        features = [m for m in reader.messages() if m.msgtype == bags.FEATURE_MAP_TYPE]
    assert len(features) == processed
