"""OpenVINO backend: official parity per precision, batches, int8 calibration, cache, errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from markers import needs_openvino

from rvm_ros.imaging.synthetic import synthetic_frames
from rvm_ros.model import RVM
from rvm_ros.runtime import BackendUnavailable, InputError, create_encoder, encode_video
from rvm_ros.runtime.backends.openvino import compile_config, openvino_available
from rvm_ros.runtime.cpu_table import cpu_choice, cpu_feature_set


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-token cosine similarity of ``[..., D]`` arrays."""
    num = (a.astype(np.float64) * b).sum(-1)
    return np.asarray(num / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


@pytest.fixture(scope="module")
def calibration_npy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight generated frames (not the evaluation videos) to calibrate int8 on."""
    path = tmp_path_factory.mktemp("calib") / "calib.npy"
    np.save(path, synthetic_frames(8, 1, 256, 256, seed=5)[:, 0])
    return path


@needs_openvino
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_reproduces_official_stream_at_its_precision(
    precision: str,
    tiny_model: RVM,
    tiny_io: dict[str, Any],
    onnx_cache: Path,
    calibration_npy: Path,
) -> None:
    enc = create_encoder(
        tiny_model,
        backend="openvino",
        precision=precision,
        cache_dir=onnx_cache,
        calibration=calibration_npy,
    )
    assert (enc.info.backend, enc.info.precision, enc.info.device) == ("openvino", precision, "cpu")
    assert enc.info.model_id == tiny_model.model_id
    feats = encode_video(enc, tiny_io["stream_video"])
    want = tiny_io["stream_features"]
    assert feats.dtype == np.float32 and feats.shape == want.shape
    if precision == "fp32":
        assert np.abs(feats - want).max() <= 1e-4
    else:
        cos = _cosine(feats, want)
        assert cos.mean() >= 0.99, f"{precision} mean per-token cosine {cos.mean():.5f}"
        assert np.abs(feats - want).max() > 1e-4  # really ran at reduced precision


@needs_openvino
def test_batch_of_cameras_and_partial_batches_continue_states(
    tiny_model: RVM, tiny_io: dict[str, Any], onnx_cache: Path
) -> None:
    enc = create_encoder(
        tiny_model, backend="openvino", height=128, width=192, cache_dir=onnx_cache
    )
    feats = encode_video(enc, tiny_io["stream2_video"], cameras=["l", "r"])
    assert np.abs(feats - tiny_io["stream2_features"]).max() <= 1e-4
    enc.reset()
    video = tiny_io["stream2_video"]
    first = enc.step(video[1, 0:1], ["r"])  # batch 1, then batch 2: two compiled shapes
    both = enc.step(np.stack([video[0, 0], video[1, 1]]), ["l", "r"])
    np.testing.assert_allclose(first[0], tiny_io["stream2_features"][1, 0], atol=1e-4)
    np.testing.assert_allclose(both[0], tiny_io["stream2_features"][0, 0], atol=1e-4)
    np.testing.assert_allclose(both[1], tiny_io["stream2_features"][1, 1], atol=1e-4)
    both[:] = 0.0  # the caller owns its result: the states are not aliased
    np.testing.assert_allclose(
        enc.step(video[1, 2:3], ["r"])[0], tiny_io["stream2_features"][1, 2], atol=1e-4
    )


@needs_openvino
def test_int8_records_its_calibration_and_reuses_the_cached_ir(
    tiny_model: RVM, onnx_cache: Path, calibration_npy: Path
) -> None:
    a = create_encoder(
        tiny_model,
        backend="openvino",
        precision="int8",
        cache_dir=onnx_cache,
        calibration=calibration_npy,
    )
    record = a.calibration  # type: ignore[attr-defined]
    assert record.source == str(calibration_npy.resolve())
    assert (record.frames, record.fit) == (8, 6)
    assert 0.99 <= record.cosine <= 1.0 and record.cosine_min <= record.cosine
    ir = a.model_path  # type: ignore[attr-defined]
    assert ir.suffix == ".xml" and ir.with_suffix(".json").is_file()
    stamp = ir.stat().st_mtime_ns
    b = create_encoder(
        tiny_model,
        backend="openvino",
        precision="int8",
        cache_dir=onnx_cache,
        calibration=calibration_npy,
    )
    assert b.model_path == ir and ir.stat().st_mtime_ns == stamp  # type: ignore[attr-defined]
    assert b.calibration == record  # type: ignore[attr-defined]
    assert not list(ir.parent.glob("*.part*"))  # no half-written files left behind


@needs_openvino
@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", r"runs on CPU, GPU, NPU, AUTO \(Intel devices\), not 'cuda'"),
        ("XPU", "not 'XPU'"),
    ],
)
def test_unknown_devices_are_refused(
    tiny_model: RVM, onnx_cache: Path, device: str, message: str
) -> None:
    with pytest.raises(BackendUnavailable, match=message):
        create_encoder(tiny_model, backend="openvino", device=device, cache_dir=onnx_cache)


@needs_openvino
def test_absent_device_names_the_present_ones(tiny_model: RVM, onnx_cache: Path) -> None:
    import openvino as ov

    if any(d.startswith("NPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an NPU")
    with pytest.raises(BackendUnavailable, match=r"device NPU is not present here \(devices: "):
        create_encoder(tiny_model, backend="openvino", device="NPU", cache_dir=onnx_cache)


@needs_openvino
def test_bad_calibration_frames_are_one_clear_error(
    tiny_model: RVM, onnx_cache: Path, tmp_path: Path
) -> None:
    short = tmp_path / "short.npy"
    np.save(short, synthetic_frames(2, 1, 32, 32)[:, 0])
    with pytest.raises(InputError, match="int8 calibration needs at least 4 frames"):
        create_encoder(
            tiny_model,
            backend="openvino",
            precision="int8",
            cache_dir=onnx_cache,
            calibration=short,
        )
    with pytest.raises(InputError, match="cannot read int8 calibration frames"):
        create_encoder(
            tiny_model,
            backend="openvino",
            precision="int8",
            cache_dir=onnx_cache,
            calibration=tmp_path / "missing.npy",
        )


def test_absent_openvino_is_a_clear_reason(
    tiny_model: RVM, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now fails
    ok, why = openvino_available()
    assert not ok and "pip install rvm_ros[openvino]" in why
    with pytest.raises(BackendUnavailable, match=r"the openvino backend cannot run: openvino is"):
        create_encoder(tiny_model, backend="openvino", cache_dir=onnx_cache)
    backend, reason = cpu_choice("fp32", lambda b: (b != "openvino", "not installed"), "amx")
    assert backend != "openvino" and "openvino skipped: not installed" in reason


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"}, "amx"),
        ({"avx2", "avx512f", "avx512_bf16"}, "avx512_bf16"),
        ({"avx2", "avx512f"}, "avx512"),
        ({"avx2"}, "avx2"),
        (set(), "generic"),
    ],
)
def test_cpu_feature_sets(flags: set[str], expected: str) -> None:
    assert cpu_feature_set(frozenset(flags)) == expected


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_table_choice_names_the_feature_set_and_precision(precision: str) -> None:
    backend, reason = cpu_choice(precision, lambda b: (True, ""), "amx")
    assert f"(amx CPU, {precision})" in reason
    assert backend in ("openvino", "onnxruntime", "torch")


def test_cpu_threads_are_not_pinned() -> None:
    config = compile_config("bf16", "CPU", 2)
    assert config["ENABLE_CPU_PINNING"] is False and config["INFERENCE_NUM_THREADS"] == 2
    assert config["INFERENCE_PRECISION_HINT"] == "bf16"
    assert compile_config("int8", "CPU", 2, bf16=False)["INFERENCE_PRECISION_HINT"] == "f32"
    assert "INFERENCE_NUM_THREADS" not in compile_config("fp32", "GPU", 2)


@needs_openvino
def test_compiled_model_cache_is_per_configuration_and_reused(
    tiny_model: RVM, tiny_io: dict[str, Any], tmp_path: Path
) -> None:
    video = tiny_io["stream_video"][:, :2]
    made: dict[str, list[tuple[Path, np.ndarray]]] = {}
    for precision in ("fp32", "bf16", "bf16"):  # the second bf16 starts from the cache
        enc = create_encoder(
            tiny_model, backend="openvino", precision=precision, cache_dir=tmp_path
        )
        made.setdefault(precision, []).append((enc.blob_dir, encode_video(enc, video)))  # type: ignore[attr-defined]
        enc.close()
    assert made["fp32"][0][0] != made["bf16"][0][0]
    assert list(made["bf16"][0][0].glob("*.blob"))  # the compiled model was cached
    (dir_a, feats_a), (dir_b, feats_b) = made["bf16"]
    assert dir_a == dir_b and np.isfinite(feats_b).all()
    np.testing.assert_array_equal(feats_a, feats_b)
