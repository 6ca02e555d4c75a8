"""Fitting the feature centre on training sequences, and training from a centred model."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from rvm_ros.checkpoint import load_model, save_safetensors
from rvm_ros.model import RVM
from rvm_ros.training.center import CenterFit, fit_center, sequence_data, with_center
from rvm_ros.training.data import ClipDataset
from rvm_ros.training.trainer import build_model, init_weights, model_config

from .conftest import small_config


def _setup(tmp_path: Path) -> tuple[RVM, ClipDataset, CenterFit]:
    cfg = small_config(tmp_path / "run")
    model = RVM(cfg.model.rvm_config(), with_decoder=True)
    init_weights(model, 0)
    fit = CenterFit(clips=6, frames=5, warmup=2, batch=4)
    dataset = ClipDataset(sequence_data(cfg.data, fit), fit.seed, model.config.patch_size)
    return model.eval(), dataset, fit


def test_fitted_centre_makes_the_published_features_zero_mean(tmp_path: Path) -> None:
    model, dataset, fit = _setup(tmp_path)
    table = fit_center(model, dataset, fit)
    grid = model.config.grid(64, 64)
    assert table.shape == (1 + grid[0] * grid[1], model.config.dim)
    centred = with_center(model, table, grid)
    frames = np.stack([dataset[i].source for i in range(fit.clips)])  # [6, 5, 64, 64, 3]
    state = centred.init_state(fit.clips, 64, 64)
    kept, raw = [], []
    with torch.no_grad():
        for t in range(fit.frames):
            feats, state = centred.step(torch.from_numpy(frames[:, t]), state)
            if t >= fit.warmup:
                kept.append(feats)
                raw.append(state)
    mean = torch.cat(kept).mean(0)  # [N, D]: zero per token, by construction of the fit
    scale = torch.cat(raw).abs().mean()
    assert float(mean.abs().max()) < 1e-4 * float(scale) + 1e-5
    # The per-cell spread the centre removed was real (not a zero table).
    assert float((table[1:] - table[1:].mean(0)).norm(dim=-1).mean()) > 0


def test_fit_is_deterministic(tmp_path: Path) -> None:
    model, dataset, fit = _setup(tmp_path)
    calls: list[int] = []
    a = fit_center(model, dataset, fit, progress=calls.append)
    b = fit_center(model, dataset, fit)
    assert torch.equal(a, b)
    assert calls == [4, 6]


@pytest.mark.parametrize(
    "kwargs", [{"clips": 0}, {"frames": 3, "warmup": 3}, {"warmup": -1}, {"batch": 0}]
)
def test_bad_fit_settings_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="CenterFit"):
        CenterFit(**kwargs)


def test_training_from_a_centred_checkpoint_drops_the_centre(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, dataset, fit = _setup(tmp_path)
    grid = model.config.grid(64, 64)
    centred = with_center(model, fit_center(model, dataset, fit), grid)
    init = save_safetensors(centred.state_dict(), centred.config, tmp_path / "init.safetensors")
    assert load_model(init).config.center_grid == grid  # the file carries it
    cfg = small_config(tmp_path / "run2", f"init={init}")
    with caplog.at_level(logging.WARNING):
        trained = build_model(cfg)
    assert trained.feature_center is None and trained.config.center_grid is None
    assert model_config(cfg).center_grid is None
    assert "feature centre" in caplog.text and "fit-center" in caplog.text
    for name, value in model.state_dict().items():
        torch.testing.assert_close(trained.state_dict()[name], value)
