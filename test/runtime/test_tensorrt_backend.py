"""TensorRT backend control flow, on the CPU with a stand-in ``tensorrt`` module.

The stand-in (`fake_tensorrt.py`) is not TensorRT: it returns what TensorRT's calls
return and runs the ONNX step with ONNX Runtime on the memory bound to its tensors. These
tests check what rvm_ros does around TensorRT (names, shapes, addresses, the build-check
gate, sidecars, caches, state buffers, graph capture), not TensorRT itself. The last test
runs the real thing and skips where TensorRT or a CUDA device is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rvm_ros.fsutil import file_sha256
from rvm_ros.model import RVM
from rvm_ros.runtime import BackendUnavailable, InputError, create_encoder, encode_video
from rvm_ros.runtime.backends.tensorrt import (
    EngineCheckFailed,
    PlanMismatch,
    TensorRTEncoder,
    TensorRTError,
    build_plan_file,
    cached_engine,
    encoder_from_onnx,
    encoder_from_plan,
    tensorrt_available,
)
from rvm_ros.runtime.backends.tensorrt.build import BuildOptions
from rvm_ros.runtime.backends.tensorrt.plan import read_sidecar, sidecar_path
from rvm_ros.runtime.cache import cached_export_of, timing_cache_path
from rvm_ros.runtime.export import export_model


def _load_fake() -> types.ModuleType:
    path = Path(__file__).with_name("fake_tensorrt.py")
    spec = importlib.util.spec_from_file_location("tensorrt", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FAKE = _load_fake()


class HostDevice:
    """Stand-in for `CudaDevice`: CPU tensors, no stream, graphs via the fake's capture."""

    torch_device = torch.device("cpu")

    def __init__(self, name: str = "Fake GPU", compute_capability: str = "9.0") -> None:
        self.name, self.compute_capability = name, compute_capability

    def stream_handle(self) -> int:
        return 0

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    def capture(self, launch: Callable[[], None]) -> Callable[[], None]:
        replay: Callable[[], None] = FAKE.capture(launch)
        return replay

    def activate(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()


@pytest.fixture
def trt(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The stand-in installed as ``tensorrt`` for one test."""
    FAKE.reset()
    monkeypatch.setitem(sys.modules, "tensorrt", FAKE)
    yield FAKE


@pytest.fixture(scope="module")
def onnx_step(tiny_model: RVM, onnx_cache: Path) -> Path:
    """The official tiny model's exported step at 256x256."""
    return cached_export_of(tiny_model, 256, 256, onnx_cache)


def _encoder(onnx: Path, cache: Path, **kw: Any) -> TensorRTEncoder:
    args: dict[str, Any] = {"precision": "fp32", "device": None, "max_batch": 4}
    return encoder_from_onnx(onnx, cache=cache, engine_device=HostDevice(), **{**args, **kw})


def test_tensorrt_is_reported_unavailable_here(
    tiny_model: RVM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, why = tensorrt_available()
    if ok:
        pytest.skip(f"TensorRT runs here ({why})")
    assert why.startswith(("tensorrt cannot be imported", "tensorrt is installed but"))
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        create_encoder(tiny_model, backend="tensorrt", cache_dir=tmp_path)
    # type stubs alone make `import tensorrt` succeed as an empty namespace package
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    assert tensorrt_available() == (
        False,
        "tensorrt imports but is not the TensorRT runtime (type stubs only?)",
    )


def test_engine_reproduces_official_stream_and_is_cached(
    trt: types.ModuleType, onnx_step: Path, tiny_io: dict[str, Any], tmp_path: Path
) -> None:
    enc = _encoder(onnx_step, tmp_path)
    assert enc.build_check is not None and enc.build_check.passed
    assert (enc.info.backend, enc.info.precision, enc.info.tokens) == ("tensorrt", "fp32", 257)
    feats = encode_video(enc, tiny_io["stream_video"])
    assert np.abs(feats - tiny_io["stream_features"]).max() <= 1e-4
    plans = list((tmp_path / "engines").glob("*.plan"))
    assert plans == [enc.plan_path]
    side = read_sidecar(enc.plan_path)
    assert side.onnx_sha256 == file_sha256(onnx_step)
    assert (side.tensorrt_version, side.gpu_name, side.compute_capability) == (
        trt.__version__,
        "Fake GPU",
        "9.0",
    )
    assert (side.inputs, side.outputs) == (("frames", "state"), ("features", "new_state"))
    assert (side.precision, side.height, side.width, side.max_batch) == ("fp32", 256, 256, 4)
    assert side.build_check["passed"] and side.build_check["accepted"] is False
    assert side.cache_key and side.cache_key in enc.plan_path.name
    assert '"dim": 64' in side.model_config
    stamp = enc.plan_path.stat().st_mtime_ns
    again = _encoder(onnx_step, tmp_path)
    assert again.build_check is None  # loaded from the cache: no build
    assert len(trt.LOG["builds"]) == 1 and enc.plan_path.stat().st_mtime_ns >= stamp
    np.testing.assert_array_equal(encode_video(again, tiny_io["stream_video"]), feats)


def test_steady_cameras_swap_two_device_buffers(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    enc = _encoder(onnx_step, tmp_path)
    frames = np.random.default_rng(0).integers(0, 256, (5, 2, 256, 256, 3), np.uint8)
    trt.LOG["executes"].clear()
    for t in range(5):
        enc.step(frames[t], ["a", "b"])
    runs = trt.LOG["executes"]
    for prev, cur in itertools.pairwise(runs):
        assert cur["state"] == prev["new_state"]  # the output is the next input
        assert cur["new_state"] == prev["state"]  # and the two buffers alternate
    assert len({r["state"] for r in runs}) == 2


def test_changing_camera_sets_match_onnx_runtime(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    schedule = [
        ["a", "b"],
        ["a", "b"],
        ["b", "a"],  # same cameras, other order
        ["a"],  # another batch size
        ["a", "b", "c"],  # a new camera
        ["c", "b"],
        ["reset:b"],
        ["a", "b"],
        ["a", "b"],
        ["b"],
        ["a", "c"],  # c's state must have survived the buffer it lived in being rewritten
    ]
    trt_enc = _encoder(onnx_step, tmp_path)
    ort_enc = create_encoder(onnx_step, backend="onnxruntime", max_batch=4, threads=1)
    for step in schedule:
        if step[0].startswith("reset:"):
            for enc in (trt_enc, ort_enc):
                enc.reset(step[0].split(":")[1])
            continue
        frames = rng.integers(0, 256, (len(step), 256, 256, 3), np.uint8)
        np.testing.assert_allclose(
            trt_enc.step(frames, step), ort_enc.step(frames, step), atol=1e-5, rtol=0
        )


def test_cuda_graphs_capture_one_graph_per_parity_and_batch(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(2)
    plain = _encoder(onnx_step, tmp_path)
    graphed = _encoder(onnx_step, tmp_path, cuda_graphs=True)
    for names in (["a", "b"], ["a", "b"], ["a", "b"], ["a"], ["a"], ["a", "b"], ["b", "a"]):
        frames = rng.integers(0, 256, (len(names), 256, 256, 3), np.uint8)
        np.testing.assert_array_equal(graphed.step(frames, names), plain.step(frames, names))
    assert trt.LOG["captures"] == [1, 1, 1, 1]  # batch 2 x parity 2, batch 1 x parity 2


def test_failed_build_check_fails_the_start_and_caches_nothing(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    trt.reset(noise=0.01)
    with pytest.raises(EngineCheckFailed, match=r"max abs error 0\.01.*not kept") as info:
        _encoder(onnx_step, tmp_path)
    assert info.value.cause == "engine_check_failed"
    assert "tensorrt.accept_build_error" in str(info.value)
    engines = tmp_path / "engines"
    assert not list(engines.glob("*.plan")) and not list(engines.glob("*.json"))
    accepted = _encoder(onnx_step, tmp_path, accept_build_error=True)
    assert accepted.build_check is not None and not accepted.build_check.passed
    assert read_sidecar(accepted.plan_path).build_check["accepted"] is True
    with pytest.raises(EngineCheckFailed, match="accepted then"):
        _encoder(onnx_step, tmp_path)  # a cached, accepted failure needs the parameter again


def test_reduced_precision_gate_uses_cosine(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    trt.reset(noise=0.01)  # 0.01 added to features of magnitude ~1: cosine stays ~0.9999
    enc = _encoder(onnx_step, tmp_path, precision="fp16")
    assert enc.build_check is not None and enc.build_check.passed
    assert enc.build_check.metric == "min_cosine" and enc.build_check.max_abs_error > 1e-3
    assert "fp16" in trt.LOG["builds"][0]["flags"] and "tf32" not in trt.LOG["builds"][0]["flags"]


def test_compatibility_flags_reach_the_builder_and_the_key(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    plain = _encoder(onnx_step, tmp_path)
    portable = _encoder(
        onnx_step, tmp_path, version_compatible=True, hardware_compatibility="ampere_plus"
    )
    assert portable.plan_path != plain.plan_path  # another key
    build = trt.LOG["builds"][1]
    assert "version_compatible" in build["flags"] and build["hardware"] == "ampere_plus"
    assert trt.LOG["host_code"] == [False, True]  # version-compatible plans embed host code
    flags = read_sidecar(portable.plan_path).build_flags
    assert flags["version_compatible"] is True and flags["hardware_compatibility"] == "ampere_plus"


def test_wrong_tensor_names_are_listed(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    trt.reset(rename={"state": "input_state"})
    with pytest.raises(TensorRTError) as info:
        _encoder(onnx_step, tmp_path)
    text = str(info.value)
    assert "has inputs ['frames', 'input_state']" in text
    assert "needs inputs ['frames', 'state']" in text and "(key " in text
    assert not list((tmp_path / "engines").glob("*.plan"))


def test_failed_tensorrt_calls_name_the_engine(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    enc = _encoder(onnx_step, tmp_path, max_batch=2)
    enc.loaded.engine.plan["max_batch"] = 1  # type: ignore[attr-defined]  # the stand-in's
    frames = np.zeros((2, 256, 256, 3), np.uint8)
    with pytest.raises(TensorRTError, match=r"set_input_shape\('frames', \(2, 256, 256, 3\)\)"):
        enc.step(frames, ["a", "b"])
    with pytest.raises(TensorRTError, match=str(enc.plan_path)):
        enc.step(frames, ["a", "b"])
    trt.reset(fail=True)
    with pytest.raises(TensorRTError, match="failed to build an engine"):
        _encoder(onnx_step, tmp_path, max_batch=3)


def test_cuda_errors_name_the_engine(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc = _encoder(onnx_step, tmp_path, max_batch=1)

    def illegal_access() -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(enc.device, "begin", illegal_access)
    with pytest.raises(TensorRTError, match=r"CUDA error while running engine .*illegal") as info:
        enc.step(np.zeros((1, 256, 256, 3), np.uint8), ["a"])
    assert str(enc.plan_path) in str(info.value) and "(key " in str(info.value)


def test_timing_cache_is_reused_across_builds(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    first = _encoder(onnx_step, tmp_path, max_batch=2)
    timing = timing_cache_path(tmp_path, trt.__version__, "9.0")
    saved = timing.read_bytes()
    assert trt.LOG["timing_loaded"] == [b""] and saved.startswith(b"FAKE-TC")
    second = _encoder(onnx_step, tmp_path, max_batch=3)  # another key: a new build
    assert second.plan_path != first.plan_path
    assert trt.LOG["timing_loaded"][-1] == saved
    timing.write_bytes(b"garbage from another TensorRT")
    _encoder(onnx_step, tmp_path, max_batch=4)  # rejected cache: a new one, build succeeds
    assert timing.read_bytes().startswith(b"FAKE-TC")


def test_superseded_engines_are_pruned(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    device = HostDevice()
    plans = []
    for batch in (1, 2, 3):
        options = BuildOptions(precision="fp32", max_batch=batch)
        loaded = cached_engine(onnx_step, options, device, cache=tmp_path, keep_engines=2)
        plans.append(loaded.plan_path)
    left = sorted((tmp_path / "engines").glob("*.plan"))
    assert left == sorted(plans[1:])
    assert not sidecar_path(plans[0]).exists()
    assert not [p for p in (tmp_path / "engines").iterdir() if ".tmp-" in p.name]


def test_cached_plan_without_sidecar_is_rebuilt(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    enc = _encoder(onnx_step, tmp_path)
    sidecar_path(enc.plan_path).unlink()  # e.g. killed between the two renames
    again = _encoder(onnx_step, tmp_path)
    assert again.build_check is not None  # built again
    assert len(trt.LOG["builds"]) == 2 and sidecar_path(again.plan_path).is_file()


def test_exported_plan_loads_and_mismatches_are_refused(
    trt: types.ModuleType, tiny_model: RVM, tiny_io: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "tiny.plan"
    result = export_model(
        tiny_model,
        out,
        fmt="engine",
        precision="fp32",
        max_batch=2,
        cache=tmp_path / "cache",
        engine_device=HostDevice(),
    )
    assert result.engine_check is not None and result.engine_check.passed
    assert result.sidecar == sidecar_path(out) and out.is_file()
    enc = encoder_from_plan(out, device=None, max_batch=2, engine_device=HostDevice())
    feats = encode_video(enc, tiny_io["stream_video"])
    assert np.abs(feats - tiny_io["stream_features"]).max() <= 1e-4
    with pytest.raises(PlanMismatch, match=r"built for Fake GPU.*rvm-ros export --format engine"):
        encoder_from_plan(out, device=None, max_batch=2, engine_device=HostDevice("Orin", "8.7"))
    with pytest.raises(PlanMismatch, match="not 128x128"):
        encoder_from_plan(
            out, device=None, max_batch=2, height=128, width=128, engine_device=HostDevice()
        )
    with pytest.raises(InputError, match=r"exceeds the batch profile 1\.\.2"):
        encoder_from_plan(out, device=None, max_batch=3, engine_device=HostDevice())
    side = sidecar_path(out)
    data = json.loads(side.read_text())
    side.write_text(json.dumps({**data, "tensorrt_version": "8.6.1"}))
    with pytest.raises(PlanMismatch, match=r"built with TensorRT 8\.6\.1"):
        encoder_from_plan(out, device=None, max_batch=2, engine_device=HostDevice())
    with pytest.raises(InputError, match="is a TensorRT plan; use backend tensorrt or auto"):
        create_encoder(out, backend="onnxruntime")


def test_plan_file_is_written_only_when_the_check_passes(
    trt: types.ModuleType, onnx_step: Path, tmp_path: Path
) -> None:
    trt.reset(noise=0.05)
    out = tmp_path / "tiny.plan"
    options = BuildOptions(precision="fp32", max_batch=1)
    with pytest.raises(EngineCheckFailed, match=r"engine .*tiny\.plan.*max abs error 0\.05"):
        build_plan_file(onnx_step, out, options, HostDevice(), cache=tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        timing_cache_path(tmp_path, trt.__version__, "9.0").name  # only the timing cache
    ]
    built = build_plan_file(
        onnx_step, out, options, HostDevice(), cache=tmp_path, accept_build_error=True
    )
    assert built.plan_path == out and read_sidecar(out).build_check["accepted"] is True


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_real_engine_reproduces_official_stream(
    tiny_model: RVM, tiny_io: dict[str, Any], tmp_path: Path, precision: str
) -> None:  # pragma: no cover - needs TensorRT and a GPU
    ok, why = tensorrt_available()
    if not ok:
        pytest.skip("no CUDA device" if "CUDA" in why else f"no TensorRT ({why})")
    enc = create_encoder(
        tiny_model, backend="tensorrt", precision=precision, max_batch=4, cache_dir=tmp_path
    )
    assert isinstance(enc, TensorRTEncoder) and enc.build_check is not None
    assert enc.build_check.passed, enc.build_check.describe()
    feats = encode_video(enc, tiny_io["stream_video"])
    tol = 1e-3 if precision == "fp32" else 3e-2
    assert np.abs(feats - tiny_io["stream_features"]).max() <= tol
    again = create_encoder(
        tiny_model, backend="tensorrt", precision=precision, max_batch=4, cache_dir=tmp_path
    )
    assert isinstance(again, TensorRTEncoder) and again.build_check is None  # cached
