"""The int8 NNCF recipe: parsing, validation, and that it keys the int8 IR cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from markers import needs_openvino

from rvm_ros.imaging.synthetic import synthetic_frames
from rvm_ros.model import RVM
from rvm_ros.runtime import create_encoder
from rvm_ros.runtime.backends.openvino import OpenVINOEncoder
from rvm_ros.runtime.backends.openvino_int8 import (
    DEFAULT_RECIPE,
    PREVIOUS_RECIPE,
    Int8Recipe,
    parse_recipe,
)
from rvm_ros.runtime.cache import cached_export_of


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("mixed:0.95", Int8Recipe("mixed", 0.95)),
        ("performance:-1", Int8Recipe("performance", -1.0)),
        ("PERFORMANCE", Int8Recipe("performance", DEFAULT_RECIPE.smooth_quant)),
        (DEFAULT_RECIPE.key, DEFAULT_RECIPE),
        (PREVIOUS_RECIPE.key, PREVIOUS_RECIPE),
    ],
)
def test_parse_recipe(text: str, want: Int8Recipe) -> None:
    assert parse_recipe(text) == want


@pytest.mark.parametrize("text", ["fast", "mixed:1.5", "mixed:-0.5", "mixed:x"])
def test_parse_recipe_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_recipe(text)


@needs_openvino
def test_each_recipe_gets_its_own_int8_ir(
    tiny_model: RVM, onnx_cache: Path, tmp_path: Path
) -> None:
    calib = tmp_path / "calib.npy"
    np.save(calib, synthetic_frames(8, 1, 256, 256, seed=3)[:, 0])
    enc = create_encoder(
        tiny_model, backend="openvino", precision="int8", cache_dir=onnx_cache, calibration=calib
    )
    assert isinstance(enc, OpenVINOEncoder)
    default_ir = enc.model_path
    enc.close()
    old = OpenVINOEncoder(
        cached_export_of(tiny_model, enc.info.height, enc.info.width, onnx_cache),
        model_id=tiny_model.model_id,
        dim=enc.info.dim,
        patch_size=enc.info.patch_size,
        height=enc.info.height,
        width=enc.info.width,
        precision="int8",
        cache=onnx_cache,
        calibration=calib,
        int8_recipe=PREVIOUS_RECIPE,
    )
    try:
        assert old.model_path != default_ir and old.model_path.is_file()
        assert old.calibration is not None and old.calibration.cosine > 0.99
    finally:
        old.close()
