"""Model cards: stored in the safetensors metadata, read back, defaults and warnings of the
input size they record (issue 25)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from rvm_ros.checkpoint import CheckpointError, load_model, read_config
from rvm_ros.checkpoint.builtin import DEFAULT_SIZE, builtin_path
from rvm_ros.checkpoint.card import (
    CARD_KEY,
    DEFAULT_CARD,
    OFFICIAL_CARD,
    UNKNOWN_CARD,
    ModelCard,
    model_input_size,
    official_card,
    read_card,
    trained_size,
)
from rvm_ros.checkpoint.convert import convert
from rvm_ros.checkpoint.random import random_model
from rvm_ros.checkpoint.safetensors import save_safetensors, write_card
from rvm_ros.model import RVMConfig

# sha256 of the data section (every tensor byte) of rvm_ros/weights/default.safetensors: the
# weights of docs/TRAINING.md plus the feature centre of `rvm-ros fit-center` (issue 29;
# every other tensor byte-identical to the file before the centre).
DEFAULT_DATA_SHA256 = "91b78394a5121174078de898bedd4507e64b73832bd53d4df561c2e7e2da2b89"

CARD = ModelCard(
    input_size=(32, 48),
    source="rvm-ros train",
    data=("video bikes.mp4 (weight 1)",),
    steps=12,
    held_out={"masked_mse_vs_mean_colour": 0.5},
    notes="test",
)


def _data_section(path: Path) -> bytes:
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    return raw[8 + size :]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.safetensors"
    model = random_model("tiny", seed=3)
    return save_safetensors(model.state_dict(), model.config, path, card=CARD)


def test_card_json_round_trip_is_stable() -> None:
    assert ModelCard.from_json(CARD.to_json()) == CARD
    assert ModelCard.from_json(DEFAULT_CARD.to_json()).to_json() == DEFAULT_CARD.to_json()
    assert ModelCard.from_json("{}") == UNKNOWN_CARD and not UNKNOWN_CARD.known


def test_saved_card_reads_back_and_the_model_loads(tiny: Path) -> None:
    assert read_card(tiny) == CARD
    assert trained_size(tiny) == (32, 48)
    assert load_model(tiny).config == read_config(tiny)


def test_checkpoint_without_card_keeps_loading(tmp_path: Path) -> None:
    model = random_model("tiny")
    path = save_safetensors(model.state_dict(), model.config, tmp_path / "old.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert CARD_KEY not in (f.metadata() or {})
    assert read_card(path) == UNKNOWN_CARD and trained_size(path) is None
    assert read_card("random:tiny") == UNKNOWN_CARD
    assert load_model(path).config == model.config


@pytest.mark.parametrize(
    "card_text",
    ['{"input_size": [0, 128]}', '{"steps": -1}', '{"held_out": {"x": "big"}}', "[1]", "{"],
)
def test_invalid_card_is_a_clear_error(tmp_path: Path, tiny: Path, card_text: str) -> None:
    bad = tmp_path / "bad.safetensors"
    with safe_open(str(tiny), framework="pt") as f:
        meta = dict(f.metadata() or {})
    meta[CARD_KEY] = card_text
    from safetensors.torch import save_file

    save_file(load_file(str(tiny)), str(bad), metadata=meta)
    for read in (read_card, load_model):
        with pytest.raises(CheckpointError, match="invalid 'rvm_card' metadata") as err:
            read(bad)
        assert err.value.cause == "invalid_card"
    assert trained_size(bad) is None  # the size defaults; loading reports the error


@pytest.mark.parametrize("variant", ["S", "B", "L", "H"])
def test_released_sizes_get_the_official_256_card(variant: str) -> None:
    card = official_card(RVMConfig.from_variant(variant))
    assert card == OFFICIAL_CARD and card.input_size == (256, 256)
    assert "official RVM release" in card.source


def test_other_official_layout_files_have_no_card(fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "rvm_tiny_params.npz"  # the official layout, not a released size
    assert official_card(RVMConfig.from_variant("tiny")) == UNKNOWN_CARD
    assert read_card(src) == UNKNOWN_CARD and trained_size(src) is None
    out = tmp_path / "tiny.safetensors"
    convert(src, out)
    assert read_card(out) == UNKNOWN_CARD


def test_write_card_keeps_every_tensor_byte(tiny: Path, tmp_path: Path) -> None:
    before = _data_section(tiny)
    tensors = load_file(str(tiny))
    new = ModelCard(input_size=(64, 64), steps=99)
    out = write_card(tiny, new, tmp_path / "copy.safetensors")
    assert _data_section(out) == before
    assert read_card(out) == new and read_card(tiny) == CARD  # the source is untouched
    got = load_file(str(out))
    assert all(torch.equal(got[k], tensors[k]) for k in tensors)
    write_card(tiny, new)  # in place
    assert read_card(tiny) == new and _data_section(tiny) == before


def test_shipped_default_records_its_training() -> None:
    path = builtin_path()
    card = read_card("default")
    assert card == DEFAULT_CARD
    assert card.input_size == DEFAULT_SIZE == (128, 128)
    assert card.steps == 3050 and card.held_out["masked_mse_vs_mean_colour"] < 0.5
    assert hashlib.sha256(_data_section(path)).hexdigest() == DEFAULT_DATA_SHA256
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()[CARD_KEY])["input_size"] == [128, 128]


def test_input_size_follows_the_card_and_warns_once(
    tiny: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rvm_ros.checkpoint.card")
    assert model_input_size(tiny, 0, 0, (128, 128)) == (32, 48)
    assert model_input_size(tiny, None, None, (128, 128)) == (32, 48)
    assert model_input_size(tiny, 32, 48, (128, 128)) == (32, 48)
    assert caplog.records == []
    assert model_input_size(tiny, 64, 0, (128, 128)) == (64, 48)
    assert model_input_size(tiny, 64, 0, (128, 128)) == (64, 48)
    assert len(caplog.records) == 1
    text = caplog.records[0].getMessage()
    assert "trained at 32x48" in text and "runs at 64x48" in text
    assert model_input_size("random:tiny", 0, 0, (128, 128)) == (128, 128)  # no card
    assert model_input_size("random:tiny", 64, 64, (128, 128)) == (64, 64)
    assert len(caplog.records) == 1  # no card: nothing to warn about


def test_input_size_warning_goes_to_the_given_logger(tiny: Path) -> None:
    said: list[str] = []
    assert model_input_size(tiny, 16, 16, (128, 128), said.append) == (16, 16)
    assert len(said) == 1 and "32x48" in said[0] and "16x16" in said[0]
