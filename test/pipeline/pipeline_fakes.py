"""A tiny deterministic encoder implementing the `rvm_ros.runtime.Encoder` contract.

It lets the policy tests (resets, batching, pooling, dtype) see exactly what the
processor handed to the encoder and what came back. The real encoder is exercised in
test_pipeline_real_encoder.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FakeInfo:
    backend: str = "fake"
    precision: str = "fp32"
    device: str = "cpu"
    model_id: str = "tiny-fake000000"
    dim: int = 8
    patch_size: int = 16
    height: int = 64
    width: int = 64
    reason: str = "test"


@dataclass
class FakeEncoder:
    """Output token k of a frame = mean of patch k (CLS: of the frame) + step count.

    ``out[b, t, d] = patch_mean(t) / 255 + steps[camera] + 0.01 * d`` where
    ``steps[camera]`` counts the camera's steps since its last reset (0 on a fresh
    state), so the tests can see whether the state was reset.
    """

    info: FakeInfo = field(default_factory=FakeInfo)
    steps: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[np.ndarray, list[str]]] = field(default_factory=list)
    resets: list[str | None] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)
    nan_cameras: set[str] = field(default_factory=set)
    scale: float = 1.0
    fail: Exception | None = None

    def step(self, frames: np.ndarray, cameras: list[str]) -> np.ndarray:
        assert frames.dtype == np.uint8
        assert frames.shape[1:] == (self.info.height, self.info.width, 3)
        assert frames.shape[0] == len(cameras)
        self.calls.append((frames.copy(), list(cameras)))
        if self.fail is not None:
            raise self.fail
        p, dim = self.info.patch_size, self.info.dim
        b, h, w = frames.shape[0], self.info.height // p, self.info.width // p
        f = frames.astype(np.float64) / 255.0
        patch = f.reshape(b, h, p, w, p, 3).mean(axis=(2, 4, 5)).reshape(b, h * w)
        glob = f.mean(axis=(1, 2, 3))[:, None]
        tokens = np.concatenate([glob, patch], axis=1)  # [B, 1 + h*w]
        steps = np.array([self.steps.get(c, 0) for c in cameras], dtype=np.float64)
        out = tokens[:, :, None] + steps[:, None, None] + 0.01 * np.arange(dim)
        out = (out * self.scale).astype(np.float32)
        for i, cam in enumerate(cameras):
            if cam in self.nan_cameras:
                out[i, 3, 1] = np.nan
            self.steps[cam] = self.steps.get(cam, 0) + 1
        self.outputs.append(out.copy())
        return out

    def reset(self, camera: str | None = None) -> None:
        self.resets.append(camera)
        if camera is None:
            self.steps.clear()
        else:
            self.steps.pop(camera, None)
