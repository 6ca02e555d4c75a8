"""The ONNX export cache finds a checkpoint's export without loading it again."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvm_ros.checkpoint.builtin import builtin_path
from rvm_ros.runtime import cache


@pytest.mark.parametrize("spec", ["builtin:default", "default"])
def test_a_builtin_checkpoint_is_keyed_by_its_file(spec: str) -> None:
    key = cache._source_key(spec, 128, 128)
    assert key is not None
    assert key == cache._source_key(str(builtin_path("default")), 128, 128)
    assert key != cache._source_key(spec, 256, 256)


def test_unknown_sources_have_no_key(tmp_path: Path) -> None:
    assert cache._source_key(tmp_path / "missing.safetensors", 64, 64) is None
    assert cache._source_key("builtin:nothing", 64, 64) is None
    assert cache._source_key("random:tiny", 64, 64) is not None


def test_the_second_lookup_of_a_builtin_does_not_load_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cache.cached_export_of("builtin:default", 64, 64, tmp_path)
    assert first.is_file()

    def no_loading(*args: object, **kwargs: object) -> object:
        raise AssertionError("the checkpoint was loaded again")

    monkeypatch.setattr("rvm_ros.runtime.source.load_any", no_loading)
    assert cache.cached_export_of("builtin:default", 64, 64, tmp_path) == first.resolve()


# ------------------------------------------------------ damaged entries (issue 27)


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _zero(p: Path) -> None:
    p.write_bytes(bytes(p.stat().st_size))


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _flip(p: Path) -> None:  # same size, other bytes
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


def _no_record(p: Path) -> None:
    p.with_name(p.name + ".sha256").unlink()


@pytest.mark.parametrize("damage", [_truncate, _zero, _empty, _flip, _no_record])
def test_a_damaged_entry_is_named_and_rebuilt_once(
    tmp_path: Path, damage, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "model.onnx"
    src.write_bytes(b"source")
    made: list[Path] = []

    def make(a: Path, b: Path) -> None:
        made.append(b)
        b.write_bytes(b"derived " * 1000)

    dst = cache.derived_file(src, ".opt", make)
    assert len(made) == 1 and cache.derived_file(src, ".opt", make) == dst and len(made) == 1
    damage(dst)
    with caplog.at_level("WARNING", logger="rvm_ros.runtime.cache"):
        assert cache.derived_file(src, ".opt", make) == dst
    assert f"damaged cache entry {dst}" in caplog.text
    assert len(made) == 2 and dst.read_bytes() == b"derived " * 1000
    assert cache.entry_damage(dst) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.onnx",
        "model.opt.onnx",
        "model.opt.onnx.sha256",
    ]


def test_a_truncated_export_is_rebuilt_and_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import numpy as np

    from rvm_ros.runtime.factory import create_encoder

    first = cache.cached_export_of("random:tiny", 64, 64, tmp_path)
    size = first.stat().st_size
    _truncate(first)
    with caplog.at_level("WARNING", logger="rvm_ros.runtime.cache"):
        enc = create_encoder(
            "random:tiny", backend="onnxruntime", height=64, width=64, cache_dir=tmp_path
        )
    try:
        assert f"damaged cache entry {first}" in caplog.text
        assert cache.entry_damage(first) is None and first.stat().st_size == size
        frames = np.zeros((1, 64, 64, 3), np.uint8)
        assert np.isfinite(enc.step(frames, ["front"])).all()
    finally:
        enc.close()
    # a damaged source index (empty, zeros, binary, a stale path) is found again
    (index,) = (tmp_path / "onnx" / "sources").glob("*.txt")
    for content in (b"", bytes(64), b"\xff\xfe garbage \x00", b"/nonexistent/file.onnx\n"):
        index.write_bytes(content)
        again = cache.cached_export_of("random:tiny", 64, 64, tmp_path)
        assert again.resolve() == first.resolve() and cache.entry_damage(again) is None
        assert Path(index.read_text().strip()) == first.resolve()  # the index is healed
