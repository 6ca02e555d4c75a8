"""Held-out evaluation material: the evaluation videos (decoded, centre-cropped and resized)
and still images kept out of training for tuning."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rvm_ros.training.data import DataError, decode_video, resolve_video

__all__ = ["held_out_image_paths", "read_eval_video", "still_crops"]


def read_eval_video(path: str | Path, height: int, width: int) -> np.ndarray:
    """All frames of a (held-out) video, centre-cropped to the aspect and resized: uint8."""
    import cv2

    def crop_resize(rgb: np.ndarray) -> np.ndarray:
        hs, ws = rgb.shape[:2]
        f = min(hs / height, ws / width)
        ch, cw = round(height * f), round(width * f)
        y, x = (hs - ch) // 2, (ws - cw) // 2
        return cv2.resize(
            rgb[y : y + ch, x : x + cw], (width, height), interpolation=cv2.INTER_AREA
        )

    return decode_video(resolve_video(str(path)), crop_resize)


def held_out_image_paths() -> list[Path]:
    """Still images kept out of training for tuning: scikit-image's held-out data images and
    matplotlib's ``grace_hopper.jpg`` (whichever are installed)."""
    import importlib.util

    from rvm_ros.training.data import HELD_OUT_SAMPLE_IMAGES

    paths: list[Path] = []
    for package, folder, names in (
        ("skimage", "data", HELD_OUT_SAMPLE_IMAGES),
        ("matplotlib", "mpl-data/sample_data", ("grace_hopper.jpg",)),
    ):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for loc in spec.submodule_search_locations:
            paths.extend(
                Path(loc) / folder / n for n in names if (Path(loc) / folder / n).is_file()
            )
    if not paths:
        raise DataError("no held-out still image found (install scikit-image)")
    return paths


def still_crops(paths: Sequence[Path], side: int, per_image: int = 4, seed: int = 0) -> np.ndarray:
    """Square crops (40-100 % of the shorter side) of still images resized to ``side``: uint8."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"image {path} cannot be read")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        hs, ws = rgb.shape[:2]
        for _ in range(per_image):
            c = int(min(hs, ws) * rng.uniform(0.4, 1.0))
            y, x = int(rng.integers(0, hs - c + 1)), int(rng.integers(0, ws - c + 1))
            out.append(
                cv2.resize(rgb[y : y + c, x : x + c], (side, side), interpolation=cv2.INTER_AREA)
            )
    return np.stack(out)
