"""RVMConfig: official sizes, JSON round trip, validation."""

from __future__ import annotations

import json

import pytest

from rvm_ros.model import VARIANTS, RVMConfig


@pytest.mark.parametrize(
    ("name", "dim", "layers", "mlp", "heads"),
    [
        ("mu", 32, 1, 128, 2),
        ("Ti", 192, 12, 768, 3),
        ("S", 384, 12, 1536, 6),
        ("M", 512, 12, 2048, 8),
        ("B", 768, 12, 3072, 12),
        ("L", 1024, 24, 4096, 16),
        ("H", 1280, 32, 5120, 16),
    ],
)
def test_official_encoder_sizes(name: str, dim: int, layers: int, mlp: int, heads: int) -> None:
    cfg = RVMConfig.from_variant(name)
    assert (cfg.dim, cfg.enc_layers, cfg.enc_mlp, cfg.enc_heads) == (dim, layers, mlp, heads)
    assert cfg.variant == name
    assert cfg.patch_size == 16 and cfg.pos_grid == 16


def test_l_core_and_decoder_match_published_construction() -> None:
    cfg = RVMConfig.from_variant("L")
    assert (cfg.core_layers, cfg.core_heads, cfg.core_mlp) == (4, 16, 4096)
    assert (cfg.dec_dim, cfg.dec_layers, cfg.dec_heads, cfg.dec_mlp) == (512, 8, 16, 2048)


def test_tiny_is_fixture_config(fixtures_dir) -> None:
    ref = json.loads((fixtures_dir / "rvm_tiny_config.json").read_text())
    cfg = RVMConfig.from_variant("tiny")
    got = {
        "D": cfg.dim,
        "enc_layers": cfg.enc_layers,
        "enc_mlp": cfg.enc_mlp,
        "enc_heads": cfg.enc_heads,
        "core_layers": cfg.core_layers,
        "core_heads": cfg.core_heads,
        "core_mlp": cfg.core_mlp,
        "dec_feats": cfg.dec_dim,
        "dec_layers": cfg.dec_layers,
        "dec_heads": cfg.dec_heads,
        "dec_mlp": cfg.dec_mlp,
    }
    assert got == {k: ref[k] for k in got}


@pytest.mark.parametrize("name", VARIANTS)
def test_json_round_trip(name: str) -> None:
    cfg = RVMConfig.from_variant(name)
    assert RVMConfig.from_json(cfg.to_json()) == cfg


def test_frozen() -> None:
    cfg = RVMConfig.from_variant("tiny")
    with pytest.raises(AttributeError):
        cfg.dim = 3  # type: ignore[misc]


def test_unknown_variant() -> None:
    with pytest.raises(ValueError, match="unknown RVM variant 'XL'"):
        RVMConfig.from_variant("XL")


def test_invalid_values_named() -> None:
    base = RVMConfig.from_variant("tiny").to_dict()
    with pytest.raises(ValueError, match="enc_heads"):
        RVMConfig.from_dict({**base, "enc_heads": 0})
    with pytest.raises(ValueError, match="not divisible by enc_heads 5"):
        RVMConfig.from_dict({**base, "enc_heads": 5})
    with pytest.raises(ValueError, match="unknown field"):
        RVMConfig.from_dict({**base, "extra": 1})
    missing = dict(base)
    del missing["dim"]
    with pytest.raises(ValueError, match=r"missing field.*dim"):
        RVMConfig.from_dict(missing)
    with pytest.raises(ValueError, match="invalid JSON"):
        RVMConfig.from_json("{not json")


def test_grid() -> None:
    cfg = RVMConfig.from_variant("tiny")
    assert cfg.grid(128, 192) == (8, 12)
    assert cfg.num_tokens(128, 192) == 97
    with pytest.raises(ValueError, match="divisible by the patch size 16"):
        cfg.grid(100, 192)
