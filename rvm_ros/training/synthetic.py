"""Synthetic video: a still background under a smooth homography camera path, moving pasted
objects on top, and procedural textures; with the exact patch correspondence between frames.

Coordinates are pixels of the output frame (x right, y down). A scene is fully described by
its parameters, so any frame time can be rendered independently and the correspondence of
any two frames is known exactly (background: the two homographies; objects: their motion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MotionLimits:
    """Largest per-frame motions of a synthetic scene (output pixels / degrees / fraction).

    Attributes:
        speed: Camera translation speed.
        rotation: Camera rotation speed in degrees.
        zoom: Camera zoom rate.
        objects: Largest number of pasted objects.
        object_speed: Largest object speed.
    """

    speed: float = 1.0
    rotation: float = 0.1
    zoom: float = 0.002
    objects: int = 3
    object_speed: float = 1.5


@dataclass
class _Object:
    pixels: np.ndarray  # [oh, ow, 3] uint8
    mask: np.ndarray  # [oh, ow] bool
    pos0: np.ndarray  # (x, y) top-left at time 0, output pixels
    vel: np.ndarray  # (vx, vy) output pixels per frame


def procedural_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random textured image ``[height, width, 3]`` uint8 (noise, gradients, shapes).

    Args:
        rng: Random generator (the only source of randomness).
        height: Image height.
        width: Image width.
    """
    import cv2

    kind = int(rng.integers(0, 3))
    img = np.zeros((height, width, 3), np.float32)
    # Multi-octave smooth colour noise as the base.
    for octave in range(int(rng.integers(2, 5))):
        cells = 2 ** (octave + 1)
        noise = rng.random((cells + 1, cells + 1, 3)).astype(np.float32)
        up = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        img += up * (0.6**octave)
    img -= img.min()
    img /= max(float(img.max()), 1e-6)
    img *= 255.0
    if kind >= 1:  # random shapes
        for _ in range(int(rng.integers(5, 40))):
            colour = tuple(float(c) for c in rng.integers(0, 256, 3))
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            size = int(rng.integers(4, max(5, min(height, width) // 4)))
            shape = int(rng.integers(0, 3))
            if shape == 0:
                cv2.rectangle(
                    img, (x, y), (x + size, y + int(rng.integers(4, size + 5))), colour, -1
                )
            elif shape == 1:
                axes = (size, int(rng.integers(2, size + 3)))
                cv2.ellipse(img, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
            else:
                x2, y2 = int(rng.integers(0, width)), int(rng.integers(0, height))
                cv2.line(img, (x, y), (x2, y2), colour, int(rng.integers(1, 6)))
    if kind == 2:  # stripes / checker overlay
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        freq = float(rng.uniform(0.05, 0.4))
        angle = float(rng.uniform(0, math.pi))
        wave = np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)))
        img *= (0.75 + 0.25 * np.sign(wave))[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _object_mask(rng: np.random.Generator, oh: int, ow: int) -> np.ndarray:
    import cv2

    mask = np.zeros((oh, ow), np.uint8)
    shape = int(rng.integers(0, 3))
    if shape == 0:
        mask[:] = 1
    elif shape == 1:
        cv2.ellipse(mask, (ow // 2, oh // 2), (max(1, ow // 2), max(1, oh // 2)), 0, 0, 360, 1, -1)
    else:  # random polygon
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radius = rng.uniform(0.5, 1.0, n)
        pts = np.stack(
            [ow / 2 + radius * ow / 2 * np.cos(angles), oh / 2 + radius * oh / 2 * np.sin(angles)],
            axis=1,
        ).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)


class SyntheticScene:
    """One synthetic scene: renders frames at any time and their exact correspondences.

    Args:
        rng: Random generator for the scene's parameters.
        background: Background image ``[Hb, Wb, 3]`` uint8 (any size >= 16 px).
        height: Output frame height.
        width: Output frame width.
        limits: Motion limits.
        object_sources: Images objects are cut from (None: procedural textures).
        scale: Crop side of the first frame as a fraction of the background's shorter side.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        background: np.ndarray,
        height: int,
        width: int,
        limits: MotionLimits,
        object_sources: list[np.ndarray] | None = None,
        scale: float = 0.7,
    ) -> None:
        self.height = height
        self.width = width
        self.background = background
        hb, wb = background.shape[:2]
        # Background pixels per output pixel, so the first view covers `scale` of the image.
        self.zoom0 = scale * min(hb / height, wb / width)
        margin_x = 0.5 * width * self.zoom0
        margin_y = 0.5 * height * self.zoom0
        self.centre0 = np.array(
            [
                rng.uniform(min(margin_x, wb / 2), max(wb - margin_x, wb / 2)),
                rng.uniform(min(margin_y, hb / 2), max(hb - margin_y, hb / 2)),
            ]
        )
        speed = limits.speed * float(rng.random())
        heading = float(rng.uniform(0, 2 * math.pi))
        self.velocity = speed * np.array([math.cos(heading), math.sin(heading)])  # out px/frame
        self.accel = rng.normal(0.0, 0.01 * max(limits.speed, 1e-6), 2)
        self.angle0 = float(rng.uniform(-5, 5))
        self.omega = float(rng.uniform(-limits.rotation, limits.rotation))
        self.zoom_rate = float(rng.uniform(-limits.zoom, limits.zoom))
        self.perspective = rng.normal(0.0, 2e-5, 2)  # small constant projective tilt
        self.objects: list[_Object] = []
        for _ in range(int(rng.integers(0, limits.objects + 1))):
            oh = int(rng.integers(height // 8, height // 3 + 1))
            ow = int(rng.integers(width // 8, width // 3 + 1))
            if object_sources:
                src = object_sources[int(rng.integers(0, len(object_sources)))]
                pixels = _random_crop(rng, src, oh, ow)
            else:
                pixels = procedural_texture(rng, oh, ow)
            ospeed = limits.object_speed * math.sqrt(float(rng.random()))
            oheading = float(rng.uniform(0, 2 * math.pi))
            self.objects.append(
                _Object(
                    pixels=pixels,
                    mask=_object_mask(rng, oh, ow),
                    pos0=np.array(
                        [
                            rng.uniform(-ow / 2, width - ow / 2),
                            rng.uniform(-oh / 2, height - oh / 2),
                        ]
                    ),
                    vel=ospeed * np.array([math.cos(oheading), math.sin(oheading)]),
                )
            )

    def homography(self, t: float) -> np.ndarray:
        """3x3 matrix mapping output pixel (x, y, 1) at time ``t`` to background pixels."""
        zoom = self.zoom0 * (1.0 + self.zoom_rate) ** t
        centre = self.centre0 + self.zoom0 * (self.velocity * t + 0.5 * self.accel * t * t)
        theta = math.radians(self.angle0 + self.omega * t)
        c, s = math.cos(theta) * zoom, math.sin(theta) * zoom
        to_centre = np.array([[1, 0, -self.width / 2], [0, 1, -self.height / 2], [0, 0, 1.0]])
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        tilt = np.array([[1, 0, 0], [0, 1, 0], [self.perspective[0], self.perspective[1], 1.0]])
        shift = np.array([[1, 0, centre[0]], [0, 1, centre[1]], [0, 0, 1.0]])
        matrix: np.ndarray = shift @ rot @ tilt @ to_centre
        return matrix

    def _object_at(self, obj: _Object, t: float) -> np.ndarray:
        return obj.pos0 + obj.vel * t

    def render(self, t: float) -> np.ndarray:
        """The frame at time ``t``: ``[height, width, 3]`` uint8."""
        import cv2

        frame = cv2.warpPerspective(
            self.background,
            self.homography(t),
            (self.width, self.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        for obj in self.objects:
            x0, y0 = self._object_at(obj, t)
            # Sub-pixel placement: translate the object onto the frame with a warp.
            m = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]])
            pix = cv2.warpAffine(obj.pixels, m, (self.width, self.height), flags=cv2.INTER_LINEAR)
            cover = cv2.warpAffine(
                obj.mask.astype(np.float32), m, (self.width, self.height), flags=cv2.INTER_LINEAR
            )[..., None]
            frame = (frame * (1.0 - cover) + pix * cover + 0.5).astype(np.uint8)
        return frame

    def _top_layer(self, pts: np.ndarray, t: float) -> np.ndarray:
        """Index of the top object covering each point (-1: background). ``pts [P, 2]``."""
        layer = np.full(len(pts), -1, np.int64)
        for j, obj in enumerate(self.objects):
            x0, y0 = self._object_at(obj, t)
            ix = np.floor(pts[:, 0] - x0).astype(np.int64)
            iy = np.floor(pts[:, 1] - y0).astype(np.int64)
            oh, ow = obj.mask.shape
            inside = (ix >= 0) & (iy >= 0) & (ix < ow) & (iy < oh)
            hit = np.zeros(len(pts), bool)
            hit[inside] = obj.mask[iy[inside], ix[inside]]
            layer[hit] = j
        return layer

    def correspondence(self, t_from: float, t_to: float, patch: int) -> np.ndarray:
        """For each patch of frame ``t_to``, the patch of frame ``t_from`` its centre came from.

        Args:
            t_from: Earlier frame time.
            t_to: Later frame time.
            patch: Patch side in pixels.

        Returns:
            ``[h*w]`` int64 row-major patch index in frame ``t_from``, or -1 where the point
            is outside that frame or hidden there by another layer.
        """
        gh, gw = self.height // patch, self.width // patch
        ys, xs = np.mgrid[0:gh, 0:gw]
        pts = np.stack([(xs.ravel() + 0.5) * patch, (ys.ravel() + 0.5) * patch], axis=1)
        layer_to = self._top_layer(pts, t_to)
        src = np.empty_like(pts)
        bg = layer_to < 0
        if bg.any():
            h_to = self.homography(t_to)
            h_from_inv = np.linalg.inv(self.homography(t_from))
            homog = (
                np.concatenate([pts[bg], np.ones((int(bg.sum()), 1))], axis=1)
                @ (h_from_inv @ h_to).T
            )
            src[bg] = homog[:, :2] / homog[:, 2:3]
        for j, obj in enumerate(self.objects):
            sel = layer_to == j
            if sel.any():
                src[sel] = pts[sel] - obj.vel * (t_to - t_from)
        inside = (
            (src[:, 0] >= 0)
            & (src[:, 1] >= 0)
            & (src[:, 0] < self.width)
            & (src[:, 1] < self.height)
        )
        layer_from = self._top_layer(np.where(inside[:, None], src, 0.0), t_from)
        valid = inside & (layer_from == layer_to)
        cx = np.clip(np.floor(src[:, 0] / patch), 0, gw - 1).astype(np.int64)
        cy = np.clip(np.floor(src[:, 1] / patch), 0, gh - 1).astype(np.int64)
        return np.where(valid, cy * gw + cx, -1)


def _random_crop(rng: np.random.Generator, image: np.ndarray, oh: int, ow: int) -> np.ndarray:
    import cv2

    hi, wi = image.shape[:2]
    side = float(rng.uniform(0.1, 0.5)) * min(hi, wi)
    ch = max(2, min(hi, int(side * oh / max(oh, ow))))
    cw = max(2, min(wi, int(side * ow / max(oh, ow))))
    y = int(rng.integers(0, hi - ch + 1))
    x = int(rng.integers(0, wi - cw + 1))
    return np.ascontiguousarray(
        cv2.resize(image[y : y + ch, x : x + cw], (ow, oh), interpolation=cv2.INTER_AREA)
    )
