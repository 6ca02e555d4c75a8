"""ONNX export of one step: checker, dynamic batch, ORT vs torch, polygraphy, metadata."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from rvm_ros.checkpoint import load_model
from rvm_ros.model import RVM
from rvm_ros.runtime import InputError
from rvm_ros.runtime.onnx.export import (
    ExportError,
    export_onnx,
    read_metadata,
    verify_onnx,
)


@pytest.fixture(scope="module")
def exported(tiny_model: RVM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(tiny_model, tmp_path_factory.mktemp("export") / "step.onnx", 128, 192)


def test_graph_interface_and_dynamic_batch(exported: Path) -> None:
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)

    def dims(v: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]

    inputs = {i.name: (i.type.tensor_type.elem_type, dims(i)) for i in model.graph.input}
    outputs = {o.name: dims(o) for o in model.graph.output}
    assert inputs == {
        "frames": (onnx.TensorProto.UINT8, ["batch", 128, 192, 3]),
        "state": (onnx.TensorProto.FLOAT, ["batch", 97, 64]),
    }
    assert outputs == {"features": ["batch", 97, 64], "new_state": ["batch", 97, 64]}
    opset = {o.domain: o.version for o in model.opset_import}[""]
    assert opset >= 17


def test_verify_matches_torch_and_summarises(exported: Path, tiny_model: RVM) -> None:
    report = verify_onnx(exported, tiny_model, 128, 192, batch_sizes=(1, 3))
    assert report.max_abs_error <= 1e-4
    assert report.batch_sizes == [1, 3]
    assert report.inputs["state"] == ["batch", 97, 64]
    assert report.nodes > 0
    assert "frames" in report.summary and "new_state" in report.summary


def test_metadata_round_trip(exported: Path, tiny_model: RVM) -> None:
    meta = read_metadata(exported)
    assert meta == {
        "model_id": tiny_model.model_id,
        "dim": 64,
        "patch_size": 16,
        "height": 128,
        "width": 192,
    }


def test_verify_catches_a_different_model(exported: Path) -> None:
    other = load_model("random:tiny:7")
    with pytest.raises(ExportError, match=r"differs from torch by .* above the tolerance"):
        verify_onnx(exported, other, 128, 192)


def test_verify_rejects_a_broken_file(tmp_path: Path, tiny_model: RVM) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ExportError, match=r"onnx\.checker rejected"):
        verify_onnx(bad, tiny_model, 128, 192)


def test_bad_arguments(tiny_model: RVM, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="width 100 must be a positive multiple of the patch"):
        export_onnx(tiny_model, tmp_path / "x.onnx", 128, 100)
    with pytest.raises(InputError, match="opset must be at least 17"):
        export_onnx(tiny_model, tmp_path / "x.onnx", 128, 128, opset=13)
    assert not (tmp_path / "x.onnx").exists()
