"""The output discipline of rvm_ros.fsutil: build beside, swap in, never destroy an input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rvm_ros.fsutil import OutputError, check_output, plan_output, staged_output


def test_new_file_appears_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.bin"
    with staged_output(out) as tmp:
        assert tmp.parent == out.parent and tmp.suffix == ".bin"
        tmp.write_bytes(b"new")
        assert not out.exists()
    assert out.read_bytes() == b"new"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.bin"]


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_force_keeps_the_previous_output_until_the_new_one_is_complete(
    tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "out"
    if kind == "dir":
        out.mkdir()
        (out / "old").write_text("old")
    else:
        out.write_text("old")
    with pytest.raises(RuntimeError), staged_output(out, force=True) as tmp:
        tmp.mkdir()
        (tmp / "half").write_text("x")
        raise RuntimeError("failed while writing")
    assert (out / "old" if kind == "dir" else out).read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with staged_output(out, force=True) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_existing_output_without_force_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("keep")
    with pytest.raises(OutputError, match="exists; pass --force") as info:
        check_output(out)
    assert info.value.cause == "output_exists" and info.value.exit_code == 2


@pytest.mark.parametrize(
    "layout",
    ["equal", "output_contains_input", "output_inside_input", "symlink_to_input"],
)
def test_output_overlapping_an_input_is_refused_even_with_force(
    tmp_path: Path, layout: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    video = data / "clip.mp4"
    video.write_bytes(b"video")
    out, inputs = {
        "equal": (data, [data]),
        "output_contains_input": (data, [video]),
        "output_inside_input": (data / "bag", [data]),
        "symlink_to_input": (tmp_path / "link", [video]),
    }[layout]
    if layout == "symlink_to_input":
        os.symlink(data, out)
    with pytest.raises(OutputError) as info:
        plan_output(out, inputs, force=True)
    assert info.value.cause == "output_is_input" and info.value.exit_code == 2
    assert video.read_bytes() == b"video"


def test_current_directory_and_bad_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="current directory"):
        check_output(".", force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is not a folder") as info:
        check_output(tmp_path / "file" / "out.npy")
    assert info.value.exit_code == 1


def test_keep_name_builds_under_a_hidden_holder(tmp_path: Path) -> None:
    out = tmp_path / "bag"
    with staged_output(out, keep_name=True) as tmp:
        assert tmp.name == "bag" and tmp.parent.name.startswith(".bag.tmp-")
        tmp.mkdir()
        (tmp / "bag_0.mcap").write_bytes(b"x")
    assert (out / "bag_0.mcap").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]
