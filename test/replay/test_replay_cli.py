"""rvm-ros replay on the command line: summary, exit codes, several bags, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from replay_helpers import FRAMES

from rvm_ros.bags import rosbag2 as bags
from rvm_ros.bags.make_bag import make_bag
from rvm_ros.cli import main as cli_main

CLI = "import sys; from rvm_ros.cli import main; sys.exit(main())"
SMALL = [
    "--checkpoint",
    "random:tiny",
    "--backend",
    "torch",
    "-p",
    "model_height=64",
    "-p",
    "model_width=64",
    "--no-visuals",
]


def test_cli_two_bags_two_workers(
    bag_factory: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = bag_factory("mcap", False), bag_factory("sqlite3", False)
    out = tmp_path / "out"
    code = cli_main(["replay", str(one), str(two), "--out", str(out), "--workers", "2", *SMALL])
    text = capsys.readouterr().out
    assert code == 0
    assert f"report: {out / 'report.md'} (complete)" in text
    rows = [line.split() for line in text.splitlines() if "carphone_pristine" in line]
    assert [r[0] for r in rows] == [one.name, two.name]
    assert all(r[2] == r[3] == str(FRAMES) for r in rows)  # frames in == processed
    report = json.loads((out / "report.json").read_text())
    assert report["processed"] == 2 * FRAMES
    md = (out / "report.md").read_text()
    assert f"## Bag `{one}`" in md and f"## Bag `{two}`" in md


def test_cli_param_remaps_a_config_camera(
    bag_factory: Callable[..., Path],
    tmp_path: Path,
    repo_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The shipped config/rvm.yaml (camera front on /front/image_raw) on a make-bag bag."""
    bag = bag_factory()
    config = str(repo_root / "config" / "rvm.yaml")
    out = tmp_path / "out"
    assert cli_main(["replay", str(bag), "--out", str(out), "--config", config, *SMALL]) == 2
    err = capsys.readouterr().err
    assert "/front/image_raw" in err and "-p cameras.<camera>.topic=<topic>" in err
    topic = "/cameras/carphone_pristine/image_raw"
    code = cli_main(
        [
            "replay",
            str(bag),
            "--out",
            str(out),
            "--config",
            config,
            *SMALL,
            "-p",
            f"cameras.front.topic:={topic}",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["cameras"]["front"]["processed"] == FRAMES
    assert report["config"] == config


def test_cli_errors(
    bag_factory: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["replay", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "replay",
                str(bag_factory()),
                "--out",
                str(tmp_path / "o"),
                "--config",
                str(tmp_path / "missing.yaml"),
            ]
        )
        == 2
    )
    assert "--config" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["replay", str(bag_factory()), "--out", str(tmp_path / "o"), "-p", "novalue"])
    assert "expected NAME=VALUE" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_leaves_valid_marked_partial_output(
    sample_video: Path, tmp_path: Path, repo_root: Path
) -> None:
    bag = tmp_path / "bag"
    make_bag([sample_video], bag, max_frames=120)
    out = tmp_path / "out"
    # The S-sized model is slow enough on a CPU that the run is still going when signalled.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            "replay",
            str(bag),
            "--out",
            str(out),
            "--checkpoint",
            "random:S",
            "--backend",
            "torch",
            "-p",
            "feature_dtype=float32",
        ],
        cwd=repo_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    partial = tmp_path / "out.partial"
    features = partial / "features"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if features.is_dir():
                break
            time.sleep(0.05)
        time.sleep(2.5)  # let a few frames through
        assert proc.poll() is None, "replay ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "partial output in" in err and str(partial) in err
    assert not out.exists()
    assert (partial / "PARTIAL").is_file()
    report = json.loads((partial / "report.json").read_text())
    assert report["complete"] is False and report["interrupted"] is True
    cam = report["cameras"]["carphone_pristine"]
    assert 0 < cam["processed"] < 120
    with bags.BagReader(features) as reader:  # closed properly: index and metadata intact
        assert not reader.recovered
        msgs = list(reader.messages(["/rvm/carphone_pristine/features"]))
    assert len(msgs) == cam["processed"]
    assert all(m.msg is not None for m in msgs)
