"""rvm_ros.cli.validate: the one argument-validation helper of the subcommands."""

from __future__ import annotations

import argparse

import pytest

from rvm_ros.cli import CliError
from rvm_ros.cli.validate import at_least, frame_sizes, model_patch_size


@pytest.mark.parametrize(
    ("values", "minimum", "message"),
    [
        ({"frames": 0}, 1, "--frames must be >= 1, got 0"),
        ({"max_frames": -2}, 1, "--max-frames must be >= 1, got -2"),
        ({"rate": -0.5}, 0, "--rate must be >= 0, got -0.5"),
    ],
)
def test_at_least_refuses(values: dict[str, float], minimum: float, message: str) -> None:
    with pytest.raises(CliError) as info:
        at_least(argparse.Namespace(**values), minimum, *values)
    assert str(info.value) == message and info.value.exit_code == 2


def test_at_least_accepts_and_skips_none() -> None:
    at_least(argparse.Namespace(frames=1, max_frames=None), 1, "frames", "max_frames")


@pytest.mark.parametrize(
    ("height", "width", "patch", "maximum", "message"),
    [
        (60, 64, 16, 8192, "--height must be a positive multiple of 16 up to 8192, got 60"),
        (64, 0, 16, None, "--width must be a positive multiple of 16, got 0"),
        (64, 80, 32, None, "--width must be a positive multiple of 32, got 80"),
        (8208, 64, 16, 8192, "--height must be a positive multiple of 16 up to 8192, got 8208"),
    ],
)
def test_frame_sizes_refuses(
    height: int, width: int, patch: int, maximum: int | None, message: str
) -> None:
    with pytest.raises(CliError, match=f"^{message}$"):
        frame_sizes(argparse.Namespace(height=height, width=width), patch, maximum)


def test_frame_sizes_accepts_multiples_and_none() -> None:
    frame_sizes(argparse.Namespace(height=64, width=None), 16, 8192)
    frame_sizes(argparse.Namespace(height=96, width=64), 32)


def test_model_patch_size_from_the_config() -> None:
    assert model_patch_size("random:tiny") == 16
    with pytest.raises(CliError, match=r"cannot load checkpoint /nonexistent\.safetensors"):
        model_patch_size("/nonexistent.safetensors")
