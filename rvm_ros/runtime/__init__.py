"""Inference runtime: one `Encoder` interface over torch, ONNX Runtime and TensorRT.

```python
encoder = create_encoder("random:S", backend="auto", precision="fp32")
features = encoder.step(frames, ["front", "rear"])  # np.uint8 [B, H, W, 3] -> [B, N, D]
encoder.reset("front")
encoder.info  # EncoderInfo(backend, precision, device, model_id, ..., reason)
```
"""

from __future__ import annotations

from rvm_ros.runtime.base import (
    BACKENDS,
    PRECISIONS,
    AnyEncoder,
    BackendUnavailable,
    Encoder,
    EncoderInfo,
    InputError,
)
from rvm_ros.runtime.factory import choose_backend, create_encoder, encode_video
from rvm_ros.runtime.source import load_any

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "AnyEncoder",
    "BackendUnavailable",
    "Encoder",
    "EncoderInfo",
    "InputError",
    "choose_backend",
    "create_encoder",
    "encode_video",
    "load_any",
]
