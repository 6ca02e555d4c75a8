"""`rvm-ros eval-features` end to end on a small model and a short video (seconds)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rvm_ros.cli import main

SMALL = [
    "--height",
    "64",
    "--width",
    "64",
    "--warmup",
    "2",
    "--sequences",
    "2",
    "--frames",
    "8",
    "--max-speed",
    "30",
    "--static-frames",
    "3",
]


def test_eval_features_writes_every_output(
    moving_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "features"
    args = ["eval-features", "--checkpoint", "random:tiny", "random:tiny:1"]
    assert main([*args, "--videos", str(moving_video), "--out", str(out), *SMALL]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "correspondence.png",
        "metrics.json",
        "pca.png",
        "table.md",
    ]
    data = json.loads((out / "metrics.json").read_text())
    names = [s["name"] for s in data["sources"]]
    assert names == ["tiny-random0", "tiny-random1", "random weights", "raw pixels"]
    assert data["units"] == ["drift.avi#0", "drift.avi#1"]  # the hard cut splits the video
    for source in data["sources"]:
        shares = source["variance_shares"]
        assert shares["position"] + shares["content"] + shares["time"] == pytest.approx(1.0)
        assert sum(source["correspondence"]["trials"]) > 0
        assert 0.0 <= source["label_propagation"]["accuracy"] <= 1.0
    pixels = data["sources"][-1]["correspondence"]
    assert sum(pixels["trials"][1:]) > 0  # the fast camera moves cells by a cell and more
    table = (out / "table.md").read_text()
    assert sum(line.startswith("| ") for line in table.splitlines()) == 5  # header + 4
    assert "raw pixels" in capsys.readouterr().out


def test_eval_features_keeps_an_existing_output(moving_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "features"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["eval-features", "--checkpoint", "random:tiny", "--videos", str(moving_video)]
    assert main([*args, "--out", str(out), *SMALL]) != 0
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--height", "60"], "--height must be a positive multiple of 16"),
        (["--frames", "1"], "--frames must be >= 2"),
        (["--bags", "/no/such/bag"], "--bags /no/such/bag: no such bag"),
    ],
)
def test_eval_features_bad_arguments_are_one_line(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["eval-features", "--checkpoint", "random:tiny", "--out", str(tmp_path / "o"), *extra]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_eval_features_reads_a_bags_image_topic(
    bag_factory: Callable[..., Path], moving_video: Path, tmp_path: Path
) -> None:
    """A real rosbag2 bag of bikes.mp4 (development material) beside a video: the bag
    topic's shot is a unit of the decomposition and its frames are benchmark sources."""
    bag = bag_factory("mcap", True, 60)
    out = tmp_path / "features"
    args = ["eval-features", "--checkpoint", "random:tiny", "--bags", str(bag)]
    args += ["--videos", str(moving_video)]
    assert main([*args, "--out", str(out), *SMALL]) == 0
    data = json.loads((out / "metrics.json").read_text())
    bag_units = [u for u in data["units"] if u.startswith(bag.name)]
    assert len(bag_units) == 1 and "/image" in bag_units[0]
    assert sum(s.startswith(bag.name) for s in data["benchmark_sources"]) == 4


def test_random_baseline_of_a_centred_model_gets_its_own_centre() -> None:
    import torch

    from rvm_ros.checkpoint import load_model
    from rvm_ros.evaluation.feature_sources import random_like
    from rvm_ros.training.center import with_center
    from rvm_ros.training.config import DataSection

    plain = load_model("random:tiny")
    grid = plain.config.grid(64, 64)
    centred = with_center(plain, torch.ones(1 + grid[0] * grid[1], plain.config.dim), grid)
    data = DataSection(procedural=1.0, height=64, width=64, workers=0)
    twin = random_like(centred, 0, center_data=data)
    assert twin.name == "random weights, centred" and "feature centre" in twin.spec
    assert twin.model is not None and twin.model.config.center_grid == grid
    table = twin.model.feature_center.table  # type: ignore[union-attr]
    assert not torch.equal(table, torch.ones_like(table))  # its own fit, not the model's
    # Without a centre in the model (or without data) the baseline stays plain.
    assert random_like(plain, 0, center_data=data).name == "random weights"
    assert random_like(centred, 0).model.feature_center is None  # type: ignore[union-attr]
