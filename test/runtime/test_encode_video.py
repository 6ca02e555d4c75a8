"""encode_video: the one frame-by-frame encode loop (used by `rvm-ros encode`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvm_ros.checkpoint import load_model
from rvm_ros.runtime import InputError, create_encoder, encode_video


def test_encode_video_matches_the_official_stream(fixtures_dir: Path) -> None:
    with np.load(fixtures_dir / "rvm_tiny_io.npz") as data:
        video, expected = data["stream2_video"], data["stream2_features"]  # [B, T, ...]
    model = load_model(fixtures_dir / "rvm_tiny_params.npz")
    encoder = create_encoder(model, backend="torch", height=128, width=192, max_batch=2)
    try:
        features = encode_video(encoder, video)
        again = encode_video(encoder, video)  # every clip restarts from the zero state
    finally:
        encoder.close()
    assert features.dtype == np.float32 and features.shape == expected.shape
    assert np.abs(features - expected).max() <= 1e-4
    np.testing.assert_array_equal(again, features)


@pytest.mark.parametrize(
    ("shape", "cameras", "match"),
    [
        ((32, 32, 3), None, r"video must be \[B, T, H, W, 3\] or \[T, H, W, 3\]"),
        ((2, 1, 32, 32, 3), ["only_one"], "got 2 clips but 1 camera names"),
    ],
)
def test_encode_video_shape_errors(
    shape: tuple[int, ...], cameras: list[str] | None, match: str
) -> None:
    encoder = create_encoder("random:tiny", backend="torch", height=32, width=32, max_batch=2)
    try:
        with pytest.raises(InputError, match=match):
            encode_video(encoder, np.zeros(shape, np.uint8), cameras)
    finally:
        encoder.close()
