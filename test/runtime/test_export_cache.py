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
