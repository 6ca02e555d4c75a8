"""Parity with the official implementation (golden fixtures) and the step / reconstruct API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvm_ros.checkpoint import load_model
from rvm_ros.model import RVM, RVMConfig

from .conftest import stream

TOL = 1e-4


def test_streaming_256_matches_official(tiny_model: RVM, tiny_io: dict) -> None:
    feats, final = stream(tiny_model, tiny_io["stream_video"])
    assert feats.shape == (1, 5, 257, 64)
    assert np.abs(feats - tiny_io["stream_features"]).max() <= TOL
    assert np.abs(final - tiny_io["stream_final_state"]).max() <= TOL


def test_batch2_resized_position_table_matches_official(tiny_model: RVM, tiny_io: dict) -> None:
    video = tiny_io["stream2_video"]
    assert video.shape[2:4] == (128, 192)
    feats, final = stream(tiny_model, video)
    assert feats.shape == (2, 3, 97, 64)
    assert np.abs(feats - tiny_io["stream2_features"]).max() <= TOL
    assert np.abs(final - tiny_io["stream2_final_state"]).max() <= TOL


def test_reconstruction_matches_official(tiny_model: RVM, tiny_io: dict) -> None:
    with torch.inference_mode():
        out = tiny_model.reconstruct(
            torch.from_numpy(tiny_io["recon_source"]),
            torch.from_numpy(tiny_io["recon_target"]),
            torch.from_numpy(tiny_io["recon_deltas"]),
            torch.from_numpy(tiny_io["recon_visible_indices"]),
        )
    assert out.shape == (1, 2, 256, 256, 3)
    assert np.abs(out.numpy() - tiny_io["recon_reconstructed"]).max() <= TOL
    # the source pass is the streaming pass: its features are the fixture's as well
    feats, final = stream(tiny_model, tiny_io["recon_source"])
    assert np.abs(feats - tiny_io["recon_features"]).max() <= TOL
    assert np.abs(final - tiny_io["recon_state"]).max() <= TOL


def test_recon_mask_matches_visible_indices(tiny_io: dict) -> None:
    # consistency of the fixture's inputs as we interpret them: mask = not visible
    vis = tiny_io["recon_visible_indices"]
    mask = tiny_io["recon_mask"].reshape(1, 2, 256)
    for t in range(2):
        expected = np.ones(256, np.float32)
        expected[vis[0, t]] = 0.0
        np.testing.assert_array_equal(mask[0, t], expected)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_cosine(tiny_npz, tiny_io: dict, dtype: torch.dtype) -> None:
    model = load_model(tiny_npz, dtype=dtype)
    assert model.encoder.cls_token.dtype == dtype
    for key in ("stream", "stream2"):
        feats, _ = stream(model, tiny_io[f"{key}_video"])
        cos = _cosine(feats, tiny_io[f"{key}_features"])
        assert cos.min() >= 0.999, f"{key}: min per-token cosine {cos.min():.5f}"


def test_uint8_and_float_frames_agree(tiny_model: RVM, tiny_io: dict) -> None:
    frames = tiny_io["stream2_video"][:, 0]
    state = tiny_model.init_state(2, 128, 192)
    with torch.inference_mode():
        a, _ = tiny_model.step(torch.from_numpy(frames), state)
        b, _ = tiny_model.step(torch.from_numpy(frames).float() / 255.0, state)
    assert torch.equal(a, b)


def test_step_is_pure(tiny_model: RVM, tiny_io: dict) -> None:
    frames = torch.from_numpy(tiny_io["stream_video"][:, 0])
    state = torch.randn(1, 257, 64, generator=torch.Generator().manual_seed(1))
    before = state.clone()
    with torch.inference_mode():
        f1, s1 = tiny_model.step(frames, state)
        f2, s2 = tiny_model.step(frames, state)
    assert torch.equal(state, before), "step must not modify the state it is given"
    assert torch.equal(f1, f2) and torch.equal(s1, s2)
    assert torch.equal(f1, s1)


def test_batch_items_independent(tiny_model: RVM, tiny_io: dict) -> None:
    video = tiny_io["stream2_video"]
    both, _ = stream(tiny_model, video)
    second, _ = stream(tiny_model, video[1:])
    assert np.abs(both[1:] - second).max() < 1e-5


def test_init_state() -> None:
    model = load_model("random:tiny")
    s = model.init_state(3, 64, 96)
    assert s.shape == (3, 1 + 4 * 6, 64) and s.dtype == torch.float32
    assert not s.any()
    with pytest.raises(ValueError, match="divisible by the patch size"):
        model.init_state(1, 60, 96)
    with pytest.raises(ValueError, match="batch must be positive"):
        model.init_state(0, 64, 64)


def test_step_errors(tiny_model: RVM) -> None:
    state = tiny_model.init_state(1, 64, 64)
    with pytest.raises(ValueError, match=r"frames must be \[B, H, W, 3\].*\(1, 64, 64\)"):
        tiny_model.step(torch.zeros(1, 64, 64, dtype=torch.uint8), state)
    with pytest.raises(ValueError, match=r"RVM\.step: input size 64x72"):
        tiny_model.step(torch.zeros(1, 64, 72, 3, dtype=torch.uint8), state)
    with pytest.raises(ValueError, match=r"state shape \(1, 17, 64\) does not match.*2x64x64"):
        tiny_model.step(torch.zeros(2, 64, 64, 3, dtype=torch.uint8), state)
    with pytest.raises(TypeError, match=r"uint8 or floating point, got torch\.int32"):
        tiny_model.step(torch.zeros(1, 64, 64, 3, dtype=torch.int32), state)


def test_reconstruct_errors(tiny_model: RVM, tiny_io: dict) -> None:
    src = torch.from_numpy(tiny_io["recon_source"])
    tgt = torch.from_numpy(tiny_io["recon_target"])
    deltas = torch.from_numpy(tiny_io["recon_deltas"])
    vis = torch.from_numpy(tiny_io["recon_visible_indices"])
    with pytest.raises(ValueError, match=r"visible_indices must lie in \[0, 256\)"):
        tiny_model.reconstruct(src, tgt, deltas, vis + 250)
    dup = vis.clone()
    dup[0, 1, 1] = dup[0, 1, 0]
    with pytest.raises(ValueError, match=r"visible_indices\[0, 1\] has repeated"):
        tiny_model.reconstruct(src, tgt, deltas, dup)
    with pytest.raises(ValueError, match=r"deltas must lie in \[0, 64\)"):
        tiny_model.reconstruct(src, tgt, deltas + 64, vis)
    with pytest.raises(ValueError, match=r"visible_indices must be \[B=1, T=2, V\]"):
        tiny_model.reconstruct(src, tgt, deltas, vis[0])
    no_decoder = RVM(RVMConfig.from_variant("tiny"), with_decoder=False)
    with pytest.raises(RuntimeError, match="no decoder"):
        no_decoder.reconstruct(src, tgt, deltas, vis)


def test_reconstruct_uses_visible_tokens(tiny_model: RVM, tiny_io: dict) -> None:
    args = [
        torch.from_numpy(tiny_io[k])
        for k in ("recon_source", "recon_target", "recon_deltas", "recon_visible_indices")
    ]
    with torch.inference_mode():
        ref = tiny_model.reconstruct(*args)
        other_vis = (args[3] + 1) % 256
        moved = tiny_model.reconstruct(*args[:3], other_vis)
        no_delta = tiny_model.reconstruct(args[0], args[1], None, args[3])
    assert (ref - moved).abs().max() > 1e-3
    assert (ref - no_delta).abs().max() > 1e-3


def test_is_tracing_only_while_traced() -> None:
    import torch

    from rvm_ros.model.layers import is_tracing

    seen: list[bool] = []

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(is_tracing())
            return x * 2

    torch.jit.trace(Probe(), torch.ones(2), check_trace=False)
    Probe()(torch.ones(2))
    assert seen == [True, False]
