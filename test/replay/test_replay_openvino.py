"""`rvm-ros replay --backend openvino`: a bag replayed through the OpenVINO backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from markers import needs_openvino
from replay_helpers import FRAMES

from rvm_ros.cli import main as cli_main


@needs_openvino
def test_replay_runs_on_openvino(
    bag_factory: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    precision = "bf16"  # fp32 parity is test/runtime/test_openvino_backend.py's
    monkeypatch.setenv("RVM_ROS_CACHE", str(tmp_path / "cache"))
    bag, out = bag_factory(), tmp_path / "out"
    args = ["replay", str(bag), "--out", str(out), "--checkpoint", "random:tiny"]
    args += ["--backend", "openvino", "--precision", precision, "--no-visuals"]
    args += ["-p", "model_height=64", "-p", "model_width=64"]
    assert cli_main(args) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["processed"] == FRAMES
    (section,) = report["bags"]
    enc = section["encoder"]
    assert (enc["backend"], enc["precision"], enc["device"]) == ("openvino", precision, "cpu")
