"""Torch backend: official parity, per-camera states, resets, precisions, CUDA graphs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from rvm_ros.model import RVM
from rvm_ros.runtime import BackendUnavailable, create_encoder, encode_video


def test_reproduces_official_stream(tiny_model: RVM, tiny_io: dict[str, Any]) -> None:
    enc = create_encoder(tiny_model, backend="torch", device="cpu")
    assert enc.info.backend == "torch" and enc.info.device == "cpu"
    assert (enc.info.dim, enc.info.patch_size, enc.info.tokens) == (64, 16, 257)
    feats = encode_video(enc, tiny_io["stream_video"])  # [1, 5, 257, 64]
    assert feats.shape == tiny_io["stream_features"].shape and feats.dtype == np.float32
    assert np.abs(feats - tiny_io["stream_features"]).max() <= 1e-4


def test_reproduces_official_batch_of_two_cameras(tiny_model: RVM, tiny_io: dict[str, Any]) -> None:
    enc = create_encoder(tiny_model, backend="torch", device="cpu", height=128, width=192)
    feats = encode_video(enc, tiny_io["stream2_video"], cameras=["left", "right"])
    assert np.abs(feats - tiny_io["stream2_features"]).max() <= 1e-4
    assert enc.cameras == ["left", "right"]


def test_cameras_keep_separate_states(tiny_model: RVM, tiny_io: dict[str, Any]) -> None:
    video = tiny_io["stream2_video"]  # [2, 3, 128, 192, 3]
    want = tiny_io["stream2_features"]
    enc = create_encoder(tiny_model, backend="torch", device="cpu", height=128, width=192)
    # Interleave the cameras in batches of one, in varying order and batch composition.
    got_l0 = enc.step(video[0, 0:1], ["left"])
    got = enc.step(np.stack([video[1, 0], video[0, 1]]), ["right", "left"])
    got_r1 = enc.step(video[1, 1:2], ["right"])
    got2 = enc.step(np.stack([video[0, 2], video[1, 2]]), ["left", "right"])
    np.testing.assert_allclose(got_l0[0], want[0, 0], atol=1e-4)
    np.testing.assert_allclose(got[0], want[1, 0], atol=1e-4)
    np.testing.assert_allclose(got[1], want[0, 1], atol=1e-4)
    np.testing.assert_allclose(got_r1[0], want[1, 1], atol=1e-4)
    np.testing.assert_allclose(got2, want[:, 2], atol=1e-4)


def test_reset_one_camera_restarts_from_zero_state(
    tiny_model: RVM, tiny_io: dict[str, Any]
) -> None:
    video = tiny_io["stream2_video"]
    want = tiny_io["stream2_features"]
    enc = create_encoder(tiny_model, backend="torch", device="cpu", height=128, width=192)
    enc.step(video[:, 0], ["left", "right"])
    enc.reset("left")
    assert enc.cameras == ["right"]
    out = enc.step(np.stack([video[0, 0], video[1, 1]]), ["left", "right"])
    np.testing.assert_allclose(out[0], want[0, 0], atol=1e-4)  # fresh start
    np.testing.assert_allclose(out[1], want[1, 1], atol=1e-4)  # continued: second frame
    enc.reset()
    assert enc.cameras == []
    enc.reset("never-seen")  # not an error


def test_returned_features_do_not_alias_state(tiny_model: RVM, tiny_io: dict[str, Any]) -> None:
    video = tiny_io["stream_video"][0]
    enc = create_encoder(tiny_model, backend="torch", device="cpu")
    first = enc.step(video[:1], ["cam"])
    first[:] = 0.0  # the caller scribbles on its copy
    second = enc.step(video[1:2], ["cam"])
    np.testing.assert_allclose(second[0], tiny_io["stream_features"][0, 1], atol=1e-4)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-token cosine similarity of [..., D] arrays."""
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return float((num / den).mean())


def test_bf16_on_cpu_is_close_to_fp32(tiny_model: RVM, tiny_io: dict[str, Any]) -> None:
    enc = create_encoder(tiny_model, backend="torch", precision="bf16", device="cpu")
    assert enc.info.precision == "bf16"
    feats = encode_video(enc, tiny_io["stream_video"])
    assert feats.dtype == np.float32
    assert _cosine(feats, tiny_io["stream_features"]) >= 0.99
    # the model given to the factory is not converted in place
    assert next(tiny_model.parameters()).dtype == torch.float32


def test_fp16_on_cpu_is_refused(tiny_model: RVM) -> None:
    with pytest.raises(BackendUnavailable, match="fp16 is not supported on the CPU"):
        create_encoder(tiny_model, backend="torch", precision="fp16", device="cpu")


def test_int8_is_not_a_torch_precision(tiny_model: RVM) -> None:
    with pytest.raises(BackendUnavailable, match="int8 runs on onnxruntime"):
        create_encoder(tiny_model, backend="torch", precision="int8", device="cpu")


def test_cuda_requested_without_cuda_is_refused(tiny_model: RVM) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        create_encoder(tiny_model, backend="torch", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("graphs", [True, False])
def test_cuda_reproduces_official_stream(
    tiny_model: RVM, tiny_io: dict[str, Any], graphs: bool
) -> None:  # pragma: no cover - GPU only
    enc = create_encoder(tiny_model, backend="torch", device="cuda", cuda_graphs=graphs)
    assert enc.info.device.startswith("cuda")
    feats = encode_video(enc, tiny_io["stream_video"])
    assert np.abs(feats - tiny_io["stream_features"]).max() <= 1e-4
    # batch sizes 1 and 2 captured separately, states stay on the GPU
    video = tiny_io["stream_video"][0]
    enc.reset()
    enc.step(video[:1], ["a"])
    out = enc.step(np.stack([video[1], video[0]]), ["a", "b"])
    np.testing.assert_allclose(out[0], tiny_io["stream_features"][0, 1], atol=1e-4)
    np.testing.assert_allclose(out[1], tiny_io["stream_features"][0, 0], atol=1e-4)
