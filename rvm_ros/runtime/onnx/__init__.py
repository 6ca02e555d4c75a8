"""ONNX: export of one recurrent step (:mod:`.export`, checked against torch) and the
ONNX Runtime graph optimisation (:mod:`.optimize`)."""

from __future__ import annotations

from rvm_ros.runtime.onnx.export import (
    DEFAULT_OPSET,
    ExportError,
    VerifyReport,
    export_onnx,
    read_metadata,
    verify_onnx,
)

__all__ = [
    "DEFAULT_OPSET",
    "ExportError",
    "VerifyReport",
    "export_onnx",
    "read_metadata",
    "verify_onnx",
]
