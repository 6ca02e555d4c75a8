"""rvm-ros demo (make demo): real video → bag → replay → report, here on a few frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rvm_ros.cli import main as cli_main
from rvm_ros.imaging.sample_videos import find_sample_video


def test_demo_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    find_sample_video("bikes.mp4")  # a missing sample video fails here, not in the demo
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--frames", "6", "--backend", "torch"]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "bag: " in text and "/cameras/bikes/image_raw 6 frames" in text
    assert "RANDOM" not in text  # the shipped default model, not random weights
    assert f"report: {out / 'replay' / 'report.md'}" in text
    report = json.loads((out / "replay" / "report.json").read_text())
    cam = report["cameras"]["bikes"]
    assert (cam["frames_in"], cam["processed"]) == (6, 6)
    plots = report["bags"][0]["plots"]
    assert plots["latency_histogram"] == ["latency_histogram.png"]
    assert plots["pca_strip"] == ["pca_strip_bikes.png"]
    for name in ("latency_histogram.png", "pca_strip_bikes.png"):
        assert (out / "replay" / name).stat().st_size > 1000
    # The PCA strip says which model it shows.
    model_id = report["bags"][0]["encoder"]["model_id"]
    markdown = (out / "replay" / "report.md").read_text()
    assert f"![PCA of the features of {model_id} (" in markdown
    # Running it again replaces the demo's own outputs.
    assert cli_main(args) == 0


def test_demo_never_replaces_a_users_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo --out DIR` on a folder of the user's with a bag/ in it: refused, untouched."""
    out = tmp_path / "data"
    (out / "bag").mkdir(parents=True)
    (out / "bag" / "recording.mcap").write_bytes(b"the user's recording")
    assert cli_main(["demo", "--out", str(out), "--frames", "2", "--backend", "torch"]) == 2
    err = capsys.readouterr().err
    assert "already holds bag not written by rvm-ros demo" in err
    assert (out / "bag" / "recording.mcap").read_bytes() == b"the user's recording"
    assert sorted(p.name for p in out.rglob("*")) == ["bag", "recording.mcap"]
