"""The feature centre: published features = state - centre; the state itself is unchanged."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from rvm_ros.model import RVM, RVMConfig
from rvm_ros.model.center import FeatureCenter
from rvm_ros.training.center import with_center, without_center


def _centred(model: RVM, grid: tuple[int, int], seed: int = 0) -> RVM:
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(1 + grid[0] * grid[1], model.config.dim, generator=gen)
    return with_center(model, table, grid)


def _run(model: RVM, video: np.ndarray) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    b, t, h, w, _ = video.shape
    state = model.init_state(b, h, w)
    feats, states = [], []
    with torch.no_grad():
        for i in range(t):
            f, state = model.step(torch.from_numpy(video[:, i]), state)
            feats.append(f)
            states.append(state)
    return feats, states


def test_features_are_state_minus_centre_and_state_is_unchanged(
    tiny_model: RVM, tiny_io: dict[str, np.ndarray]
) -> None:
    video = tiny_io["stream2_video"]  # [2, 3, 128, 192, 3]
    grid = tiny_model.config.grid(*video.shape[2:4])
    centred = _centred(tiny_model, grid)
    f0, s0 = _run(tiny_model, video)
    f1, s1 = _run(centred, video)
    table = centred.feature_center.table  # type: ignore[union-attr]
    for a, b, sa, sb in zip(f0, f1, s0, s1, strict=True):
        torch.testing.assert_close(sb, sa, rtol=0, atol=0)  # the recurrence never sees it
        torch.testing.assert_close(b, sa - table, rtol=0, atol=1e-6)
        assert torch.equal(a, sa)  # without a centre the features are the state


def test_reconstruction_ignores_the_centre(tiny_model: RVM, tiny_io: dict[str, np.ndarray]) -> None:
    if tiny_model.decoder is None:
        pytest.skip("the fixture model has no decoder")
    video = torch.from_numpy(tiny_io["stream2_video"])  # [2, 3, H, W, 3]
    centred = _centred(tiny_model, tiny_model.config.grid(*video.shape[2:4]))
    vis = torch.tensor([[[0, 5, 9]]] * 2)  # [B, T=1, V]
    with torch.no_grad():
        a = tiny_model.reconstruct(video[:, :2], video[:, 2:], None, vis)
        b = centred.reconstruct(video[:, :2], video[:, 2:], None, vis)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("size", [(8, 12), (4, 6), (16, 16)])
def test_centre_resizes_to_other_grids(size: tuple[int, int]) -> None:
    centre = FeatureCenter(3, (8, 12))
    with torch.no_grad():
        centre.table.copy_(torch.tensor([1.0, -2.0, 0.5]).expand(1 + 96, 3))
        centre.table[0] = torch.tensor([7.0, 7.0, 7.0])
    out = centre(*size)
    assert out.shape == (1 + size[0] * size[1], 3)
    torch.testing.assert_close(out[0], torch.tensor([7.0, 7.0, 7.0]))  # CLS as fitted
    # A constant map stays constant under the (normalised) resize.
    torch.testing.assert_close(out[1:], torch.tensor([1.0, -2.0, 0.5]).expand(size[0] * size[1], 3))
    if size == (8, 12):
        assert out.data_ptr() == centre.table.data_ptr()  # no copy at the fitted grid


def test_centre_follows_a_left_right_gradient_when_resized() -> None:
    centre = FeatureCenter(1, (2, 4))
    with torch.no_grad():
        centre.table[1:, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0] * 2)
    cells = centre(4, 8)[1:, 0].reshape(4, 8)
    assert torch.all(cells[:, 1:] >= cells[:, :-1] - 1e-6)  # still increases left to right
    torch.testing.assert_close(cells[0], cells[3])  # and does not vary top to bottom


def test_config_round_trip_with_and_without_centre(tiny_model: RVM) -> None:
    plain = tiny_model.config
    assert "center_grid" not in json.loads(plain.to_json())  # older readers see no new key
    with_grid = replace(plain, center_grid=(8, 12))
    back = RVMConfig.from_json(with_grid.to_json())
    assert back == with_grid and back.center_grid == (8, 12)


@pytest.mark.parametrize("bad", [(0, 4), (4,), "8x8", (2.0, 3), (True, 2)])
def test_bad_center_grid_is_refused(tiny_model: RVM, bad: object) -> None:
    with pytest.raises(ValueError, match="center_grid"):
        replace(tiny_model.config, center_grid=bad)  # type: ignore[arg-type]


def test_without_center_gives_back_the_state_as_features(
    tiny_model: RVM, tiny_io: dict[str, np.ndarray]
) -> None:
    video = tiny_io["stream2_video"][:, :2]
    centred = _centred(tiny_model, tiny_model.config.grid(*video.shape[2:4]))
    plain = without_center(centred)
    assert plain.feature_center is None and plain.config.center_grid is None
    f, s = _run(plain, video)
    assert all(torch.equal(a, b) for a, b in zip(f, s, strict=True))
