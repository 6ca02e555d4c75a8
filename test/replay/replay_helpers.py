"""Shared constants and settings of the bag-tool tests."""

from __future__ import annotations

from bag_helpers import FRAMES as FRAMES
from bag_helpers import WIDTH as WIDTH

from rvm_ros.replay.settings import ReplaySettings


def small_settings(**kw: object) -> ReplaySettings:
    """Tiny random model, 64x64 input, float32 features, torch on 1 thread."""
    params = {
        "model_height": 64,
        "model_width": 64,
        "feature_dtype": "float32",
        "track_grid": 3,
    }
    params.update(kw.pop("params", {}))  # type: ignore[arg-type]
    settings = ReplaySettings(
        params=params, checkpoint="random:tiny", backend="torch", progress=False, visuals=False
    )
    for k, v in kw.items():
        setattr(settings, k, v)
    return settings
