"""Textures of the street scene: package photographs and generated patterns.

Photographs come from the scikit-image wheel's data folder (brick, gravel, grass, coffee,
...): real image statistics for façades and ground. Patterns are generated from the
scene's random generator: window grids for façades, asphalt with lane dashes, car bodies,
striped poles, pedestrians. The evaluation videos are never used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

__all__ = ["TextureBank", "package_photos"]

_PHOTOS = ("brick.png", "gravel.png", "grass.png", "coffee.png", "chelsea.png", "rocket.jpg")


def package_photos() -> list[np.ndarray]:
    """RGB uint8 photographs shipped in the scikit-image wheel (empty if not installed)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        return []
    folder = Path(spec.origin).parent / "data"
    out = []
    for name in _PHOTOS:
        bgr = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if bgr is not None:
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return out


def _noise(rng: np.random.Generator, h: int, w: int, scales: tuple[int, ...]) -> np.ndarray:
    """Multi-scale smooth noise in [-1, 1], ``[h, w]`` float32."""
    out = np.zeros((h, w), np.float32)
    for sc in scales:
        small = rng.standard_normal((max(2, h // sc), max(2, w // sc))).astype(np.float32)
        out += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) / len(scales)
    return np.clip(out, -1.0, 1.0)


def _tint(rng: np.random.Generator, grey: np.ndarray, base: np.ndarray) -> np.ndarray:
    rgb = base[None, None, :] * (0.75 + 0.25 * grey[..., None])
    return np.clip(rgb + rng.normal(0, 4.0, rgb.shape), 0, 255).astype(np.uint8)


class TextureBank:
    """Draws textures for the scene's parts from one random generator.

    Args:
        rng: The scene's generator (textures are deterministic in it).
        photos: Photographs to mix in (default: :func:`package_photos`).
    """

    def __init__(self, rng: np.random.Generator, photos: list[np.ndarray] | None = None):
        self.rng = rng
        self.photos = package_photos() if photos is None else photos

    def _photo(self, h: int, w: int) -> np.ndarray:
        img = self.photos[int(self.rng.integers(len(self.photos)))]
        ih, iw = img.shape[:2]
        scale = max(h / ih, w / iw)
        big = cv2.resize(img, (max(w, round(iw * scale)), max(h, round(ih * scale))))
        y0 = int(self.rng.integers(big.shape[0] - h + 1))
        x0 = int(self.rng.integers(big.shape[1] - w + 1))
        return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])

    def facade(self, width_m: float, height_m: float, px_per_m: float = 12.0) -> np.ndarray:
        """A façade: a wall (photo or tinted noise) with a grid of windows and a door row."""
        rng = self.rng
        h, w = max(8, round(height_m * px_per_m)), max(8, round(width_m * px_per_m))
        if self.photos and rng.random() < 0.5:
            wall = self._photo(h, w)
        else:
            base = rng.uniform(90, 220, 3)
            wall = _tint(rng, _noise(rng, h, w, (4, 16, 64)), base)
        glass = rng.uniform(20, 90, 3)
        floor_m, bay_m = rng.uniform(2.8, 3.6), rng.uniform(2.2, 4.0)
        win_w, win_h = rng.uniform(0.4, 0.7) * bay_m, rng.uniform(0.35, 0.6) * floor_m
        for fy in np.arange(floor_m * 0.35, height_m - 1.0, floor_m):
            for fx in np.arange(bay_m * 0.2, width_m - win_w, bay_m):
                x0, y0 = round(fx * px_per_m), round(h - (fy + win_h) * px_per_m)
                x1, y1 = round((fx + win_w) * px_per_m), round(h - fy * px_per_m)
                shade = glass * rng.uniform(0.6, 1.6)
                cv2.rectangle(wall, (x0, y0), (x1, y1), shade.tolist(), -1)
                cv2.rectangle(wall, (x0, y0), (x1, y1), (235, 235, 230), 1)
        return wall

    def ground(self, size: int = 512) -> tuple[np.ndarray, float]:
        """Tiling asphalt with dashes and patches; returns ``(texture, metres per pixel)``."""
        rng = self.rng
        grey = _noise(rng, size, size, (2, 8, 32, 128))
        tex = _tint(rng, grey, np.array([95.0, 95.0, 100.0]) * rng.uniform(0.8, 1.2))
        if self.photos:  # gravel-like patches from a photograph
            patch = self._photo(size // 4, size // 4)
            y0, x0 = (int(v) for v in rng.integers(0, size - size // 4, 2))
            tex[y0 : y0 + size // 4, x0 : x0 + size // 4] = (
                0.5 * tex[y0 : y0 + size // 4, x0 : x0 + size // 4] + 0.5 * patch
            ).astype(np.uint8)
        for _ in range(int(rng.integers(6, 12))):  # paint dashes and arrows
            cx, cy = (int(v) for v in rng.integers(0, size, 2))
            ang = float(rng.uniform(0, 180))
            box = cv2.boxPoints(((cx, cy), (float(rng.uniform(6, 14)), 60.0), ang))
            cv2.fillPoly(tex, [np.round(box).astype(np.int32)], (220, 220, 210))
        return tex, 0.04

    def car(self, width_m: float, height_m: float, px_per_m: float = 24.0) -> np.ndarray:
        """A car side or end: body colour, windows band, dark wheels."""
        rng = self.rng
        h, w = max(8, round(height_m * px_per_m)), max(8, round(width_m * px_per_m))
        body = rng.uniform(30, 230, 3)
        tex = _tint(rng, _noise(rng, h, w, (4, 16)), body)
        top = round(h * 0.15)
        band = (round(w * 0.1), top, round(w * 0.9), round(h * 0.5))
        cv2.rectangle(tex, band[:2], band[2:], (40, 50, 60), -1)
        cv2.line(tex, (w // 2, top), (w // 2, round(h * 0.5)), body.tolist(), 2)
        for cx in (round(w * 0.2), round(w * 0.8)):
            cv2.circle(tex, (cx, h - 2), round(h * 0.22), (20, 20, 20), -1)
        return tex

    def pole(self, height_m: float, px_per_m: float = 24.0) -> np.ndarray:
        """A thin pole with bands (and sometimes a sign near the top)."""
        rng = self.rng
        h, w = round(height_m * px_per_m), 8
        tex = np.full((h, w, 3), rng.uniform(80, 180, 3), np.float32)
        for y in range(0, h, int(rng.integers(10, 30))):
            tex[y : y + 4] *= 0.5
        return np.clip(tex, 0, 255).astype(np.uint8)

    def pedestrian(self, px_per_m: float = 40.0) -> np.ndarray:
        """A person-sized plane (0.6 x 1.7 m): legs, torso, head."""
        rng = self.rng
        h, w = round(1.7 * px_per_m), round(0.6 * px_per_m)
        tex = np.zeros((h, w, 3), np.uint8)
        tex[:] = rng.uniform(60, 200, 3).astype(np.uint8)
        cv2.rectangle(tex, (0, round(h * 0.55)), (w, h), rng.uniform(20, 120, 3).tolist(), -1)
        cv2.circle(tex, (w // 2, round(h * 0.1)), round(w * 0.3), (180, 140, 120), -1)
        return tex
