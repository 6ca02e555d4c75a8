"""Runtime backends behind :class:`rvm_ros.runtime.base.Encoder`: :mod:`.torch`,
:mod:`.onnxruntime`, :mod:`.openvino` and the :mod:`.tensorrt` package. Imported lazily by
the factory (each pulls in its own heavy dependency)."""

from __future__ import annotations

__all__: list[str] = []
