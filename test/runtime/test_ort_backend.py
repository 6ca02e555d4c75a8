"""ONNX Runtime backend: official parity, states fed back, int8, loading an exported file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rvm_ros.model import RVM
from rvm_ros.runtime import BackendUnavailable, InputError, create_encoder, encode_video
from rvm_ros.runtime.onnx.export import export_onnx


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = (a * b).sum(-1)
    return float((num / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))).mean())


def test_reproduces_official_stream(
    tiny_model: RVM, tiny_io: dict[str, Any], onnx_cache: Path
) -> None:
    enc = create_encoder(tiny_model, backend="onnxruntime", device="cpu", cache_dir=onnx_cache)
    assert (enc.info.backend, enc.info.precision, enc.info.device) == ("onnxruntime", "fp32", "cpu")
    assert enc.info.model_id == tiny_model.model_id
    feats = encode_video(enc, tiny_io["stream_video"])
    assert np.abs(feats - tiny_io["stream_features"]).max() <= 1e-4


def test_reproduces_official_batch_and_resized_positions(
    tiny_model: RVM, tiny_io: dict[str, Any], onnx_cache: Path
) -> None:
    enc = create_encoder(
        tiny_model, backend="onnxruntime", height=128, width=192, cache_dir=onnx_cache
    )
    feats = encode_video(enc, tiny_io["stream2_video"], cameras=["l", "r"])
    assert np.abs(feats - tiny_io["stream2_features"]).max() <= 1e-4
    # the dynamic batch axis: one camera at a time continues the same states
    enc.reset()
    video = tiny_io["stream2_video"]
    first = enc.step(video[1, 0:1], ["r"])
    both = enc.step(np.stack([video[0, 0], video[1, 1]]), ["l", "r"])
    np.testing.assert_allclose(first[0], tiny_io["stream2_features"][1, 0], atol=1e-4)
    np.testing.assert_allclose(both[0], tiny_io["stream2_features"][0, 0], atol=1e-4)
    np.testing.assert_allclose(both[1], tiny_io["stream2_features"][1, 1], atol=1e-4)


def test_export_is_cached(tiny_model: RVM, onnx_cache: Path) -> None:
    a = create_encoder(tiny_model, backend="onnxruntime", cache_dir=onnx_cache)
    stamp = a.onnx_path.stat().st_mtime_ns  # type: ignore[attr-defined]
    b = create_encoder(tiny_model, backend="onnxruntime", cache_dir=onnx_cache)
    assert b.onnx_path == a.onnx_path  # type: ignore[attr-defined]
    assert b.onnx_path.stat().st_mtime_ns == stamp  # type: ignore[attr-defined]


def test_runs_an_exported_file_without_the_checkpoint(
    tiny_model: RVM, tiny_io: dict[str, Any], tmp_path: Path
) -> None:
    path = export_onnx(tiny_model, tmp_path / "tiny.onnx", 256, 256)
    enc = create_encoder(str(path), backend="onnxruntime")
    assert enc.info.model_id == tiny_model.model_id and enc.info.dim == 64
    feats = encode_video(enc, tiny_io["stream_video"])
    assert np.abs(feats - tiny_io["stream_features"]).max() <= 1e-4
    with pytest.raises(InputError, match=r"exported for 256x256 frames, not 128x192"):
        create_encoder(str(path), backend="onnxruntime", height=128, width=192)
    with pytest.raises(InputError, match="needs a checkpoint, not an ONNX file"):
        create_encoder(str(path), backend="torch")


def test_int8_stays_close_to_fp32(
    tiny_model: RVM, tiny_io: dict[str, Any], onnx_cache: Path
) -> None:
    enc = create_encoder(tiny_model, backend="onnxruntime", precision="int8", cache_dir=onnx_cache)
    assert enc.info.precision == "int8"
    assert enc.onnx_path.name.endswith(".int8.onnx")  # type: ignore[attr-defined]
    feats = encode_video(enc, tiny_io["stream_video"])
    assert feats.dtype == np.float32 and feats.shape == tiny_io["stream_features"].shape
    assert _cosine(feats, tiny_io["stream_features"]) >= 0.99
    assert np.abs(feats - tiny_io["stream_features"]).max() > 0  # really quantized


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_unsupported_precisions_are_refused(
    tiny_model: RVM, onnx_cache: Path, precision: str
) -> None:
    with pytest.raises(BackendUnavailable, match=f"precision '{precision}' is not supported"):
        create_encoder(tiny_model, backend="onnxruntime", precision=precision, cache_dir=onnx_cache)


def test_cuda_without_cuda_provider_is_refused(tiny_model: RVM, onnx_cache: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA execution provider")
    with pytest.raises(BackendUnavailable, match="no CUDAExecutionProvider"):
        create_encoder(tiny_model, backend="onnxruntime", device="cuda", cache_dir=onnx_cache)


def test_not_an_rvm_onnx_file(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(InputError, match="has no rvm_ros metadata"):
        create_encoder(str(path), backend="onnxruntime")
    with pytest.raises(InputError, match="ONNX file not found"):
        create_encoder(str(tmp_path / "missing.onnx"), backend="onnxruntime")


def test_second_start_needs_no_checkpoint_loading(
    fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_io: dict[str, Any]
) -> None:
    import shutil

    import rvm_ros.checkpoint.load

    ckpt = tmp_path / "tiny.npz"
    shutil.copy(fixtures_dir / "rvm_tiny_params.npz", ckpt)
    first = create_encoder(str(ckpt), backend="onnxruntime", cache_dir=tmp_path / "cache")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the checkpoint was loaded again")

    monkeypatch.setattr(rvm_ros.checkpoint.load, "load_model", refuse)
    again = create_encoder(str(ckpt), backend="onnxruntime", cache_dir=tmp_path / "cache")
    assert again.info.model_id == first.info.model_id
    feats = encode_video(again, tiny_io["stream_video"])
    assert np.abs(feats - tiny_io["stream_features"]).max() <= 1e-4
    # a changed checkpoint file is loaded (and exported) again
    ckpt.touch()
    with pytest.raises(AssertionError, match="loaded again"):
        create_encoder(str(ckpt), backend="onnxruntime", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(("spin", "expected"), [(False, "0"), (True, None)])
def test_spinning_is_off_unless_asked(spin: bool, expected: str | None) -> None:
    from rvm_ros.runtime.backends.onnxruntime import session_options

    opts = session_options(2, spin=spin)
    assert opts.intra_op_num_threads == 2
    entries = opts.get_session_config_entry  # raises for an entry never set
    if expected is None:
        with pytest.raises(Exception, match="allow_spinning"):
            entries("session.intra_op.allow_spinning")
    else:
        assert entries("session.intra_op.allow_spinning") == expected
        assert entries("session.inter_op.allow_spinning") == expected
