"""`rvm-ros convert`: success output and every user error, with no partial file left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvm_ros.checkpoint import load_model
from rvm_ros.cli import main


@pytest.fixture
def tiny_npz(fixtures_dir: Path) -> Path:
    return fixtures_dir / "rvm_tiny_params.npz"


def test_convert_ok(tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny.safetensors"
    assert main(["convert", str(tiny_npz), str(out)]) == 0
    assert "RVM tiny (D 64, encoder 2 x 4 heads, core 2 blocks)" in capsys.readouterr().out
    assert load_model(out).config.variant == "tiny"
    # refuses to overwrite without --force
    assert main(["convert", str(tiny_npz), str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["convert", "--force", "-q", str(tiny_npz), str(out)]) == 0


def test_convert_missing_key(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with np.load(tiny_npz) as data:
        arrays = {k: data[k] for k in data.files if k != "delta_embedder/bias"}
    src = tmp_path / "bad.npz"
    np.savez(src, **arrays)  # type: ignore[arg-type]
    out = tmp_path / "bad.safetensors"
    assert main(["convert", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rvm-ros: error: ")
    assert "missing key(s): delta_embedder/bias" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]


def test_convert_truncated(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "cut.npz"
    src.write_bytes(tiny_npz.read_bytes()[:100_000])
    assert main(["convert", str(src), str(tmp_path / "o.safetensors")]) == 2
    assert "not a readable .npz archive" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.npz"]


def test_convert_argument_errors(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", str(tmp_path / "none.npz"), str(tmp_path / "o.safetensors")]) == 2
    assert "none.npz not found" in capsys.readouterr().err
    assert main(["convert", str(tiny_npz), str(tmp_path / "o.pt")]) == 2
    assert "output must end in .safetensors" in capsys.readouterr().err
