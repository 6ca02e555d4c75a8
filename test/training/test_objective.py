"""The masked-reconstruction objective: learns on a fixed batch, ignores visible patches."""

from __future__ import annotations

import pytest
import torch

from rvm_ros.training.config import LossSection
from rvm_ros.training.data import ClipDataset, collate
from rvm_ros.training.objective import compute_loss, masked_patch_errors
from rvm_ros.training.optim import decays, make_optimizer
from rvm_ros.training.trainer import build_model

from .conftest import small_config


def test_few_steps_lower_the_loss_on_a_fixed_batch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = small_config(tmp_path, "optim.lr=3e-3", "optim.warmup_steps=0")
    torch.manual_seed(0)
    model = build_model(cfg)
    batch = collate([ClipDataset(cfg.data, 0)[i] for i in range(4)])
    optimizer = make_optimizer(model, cfg.optim)
    weights = LossSection(pixel=1.0, patch_norm=0.05, correspondence=0.05)
    losses = []
    for _ in range(8):
        out = compute_loss(
            model,
            batch.source,
            batch.target,
            batch.offsets,
            batch.visible,
            batch.correspondence,
            weights,
            autocast=False,
        )
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        losses.append(float(out.total.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_visible_patches_do_not_count() -> None:
    torch.manual_seed(0)
    target = torch.rand(1, 1, 32, 32, 3)
    pred = target.clone()
    visible = torch.tensor([[[0, 3]]])
    # Wrong only on the visible patches 0 and 3 -> zero error; on patch 1 -> positive.
    pred[0, 0, :16, :16] = 0.0
    pred[0, 0, 16:, 16:] = 1.0
    pixel, norm = masked_patch_errors(pred, target, visible, 16)
    assert float(pixel) == 0.0 and float(norm) == 0.0
    pred[0, 0, :16, 16:] = 0.0
    pixel, _ = masked_patch_errors(pred, target, visible, 16)
    expected = float((target[0, 0, :16, 16:] ** 2).mean()) / 2  # one of two masked patches
    assert abs(float(pixel) - expected) < 1e-6


def test_weight_decay_exempts_norms_biases_tokens(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = build_model(small_config(tmp_path))
    named = dict(model.named_parameters())
    assert decays(
        "encoder.layers.0.mlp.dense_in.weight", named["encoder.layers.0.mlp.dense_in.weight"]
    )
    for name in (
        "encoder.cls_token",
        "decoder.mask_token",
        "encoder.norm.weight",
        "encoder.layers.0.mlp.dense_in.bias",
    ):
        assert not decays(name, named[name]), name
    groups = make_optimizer(model, small_config(tmp_path).optim).param_groups
    assert groups[0]["weight_decay"] > 0 and groups[1]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(named)


def test_position_share_of_position_only_and_content_only_features() -> None:
    from rvm_ros.training.objective import position_share

    gen = torch.Generator().manual_seed(0)
    cell = torch.randn(1, 1, 17, 8, generator=gen)  # [1, 1, N, D]: the same in every clip
    assert float(position_share(cell.expand(6, 3, -1, -1))) == pytest.approx(1.0)
    content = torch.randn(64, 1, 17, 8, generator=gen).expand(-1, 3, -1, -1)
    # Unrelated clips: only the 1/B floor of the per-cell mean is left.
    assert float(position_share(content)) == pytest.approx(1 / 64, rel=0.3)


def test_position_term_adds_its_weight_times_the_share(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rvm_ros.training.objective import position_share, source_features

    cfg = small_config(tmp_path)
    model = build_model(cfg)
    batch = collate([ClipDataset(cfg.data, 0, 16)[i] for i in range(4)])
    args = (batch.source, batch.target, batch.offsets, batch.visible, batch.correspondence)
    torch.manual_seed(0)
    plain = compute_loss(model, *args, LossSection(), autocast=False)
    torch.manual_seed(0)
    with_term = compute_loss(model, *args, LossSection(position=0.5), autocast=False)
    with torch.no_grad():
        share = position_share(source_features(model, batch.source.float() / 255))
    gap = float((with_term.total - plain.total).detach())
    assert gap == pytest.approx(0.5 * float(share), rel=1e-4)


def test_center_cells_removes_what_every_clip_shares_at_a_cell() -> None:
    from rvm_ros.training.objective import center_cells, correspondence_loss

    gen = torch.Generator().manual_seed(0)
    first = torch.randn(4, 17, 8, generator=gen)  # [B, 1 + 16 cells, D]
    later = torch.randn(4, 17, 8, generator=gen)
    position = 10 * torch.randn(1, 17, 8, generator=gen)  # the same in every clip
    a, b = center_cells(first, later)
    a2, b2 = center_cells(first + position, later + position)
    torch.testing.assert_close(a2, a, atol=1e-5, rtol=0)
    torch.testing.assert_close(b2, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(0.5 * (a.mean(0) + b.mean(0)), torch.zeros(17, 8), atol=1e-6, rtol=0)
    # The uncentred term is dominated by the shared position code, the centred one is not.
    corr = torch.arange(16).expand(4, 16)  # cell i of the later frame is cell i of the first
    plain, _ = correspondence_loss(first + position, later + position, corr, 0.1)
    centred, _ = correspondence_loss(a2, b2, corr, 0.1)
    assert float(plain.mean()) < float(centred.mean())  # position "solves" the identity map


def test_center_correspondence_changes_only_the_correspondence_term(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = small_config(tmp_path)
    model = build_model(cfg)
    batch = collate([ClipDataset(cfg.data, 0, 16)[i] for i in range(4)])
    args = (batch.source, batch.target, batch.offsets, batch.visible, batch.correspondence)
    out = {}
    for centred in (False, True):
        torch.manual_seed(0)
        weights = LossSection(correspondence=0.5, center_correspondence=centred)
        out[centred] = compute_loss(model, *args, weights, autocast=False)
    assert torch.equal(out[False].pixel, out[True].pixel)
    assert out[True].correspondence_count == out[False].correspondence_count > 0
    assert not torch.allclose(out[False].correspondence, out[True].correspondence)
