"""CPU graph optimisation: every attention fused, same numbers as the exported graph."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from rvm_ros.model import RVM
from rvm_ros.runtime.onnx.export import export_onnx, read_metadata
from rvm_ros.runtime.onnx.optimize import fuse_attention, optimize_for_ort


@pytest.fixture(scope="module")
def exported(tiny_model: RVM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(tiny_model, tmp_path_factory.mktemp("opt") / "step.onnx", 64, 96)


def test_fuses_every_attention_and_keeps_results(exported: Path, tiny_model: RVM) -> None:
    dst = exported.with_name("step.opt.onnx")
    counts = optimize_for_ort(exported, dst)
    config = tiny_model.config
    # encoder self-attention + core cross- and self-attention per block
    assert counts["attention"] == config.enc_layers + 2 * config.core_layers
    assert counts["FastGelu"] == config.enc_layers + config.core_layers  # one per MLP
    assert counts["SkipLayerNormalization"] == 0  # left out on purpose (slower on CPU)
    model = onnx.load(str(dst))
    onnx.checker.check_model(model)
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["MultiHeadAttention"] == counts["attention"]
    assert ops["Softmax"] == 0 and ops["Tanh"] == 0
    assert read_metadata(dst) == read_metadata(exported)  # still loadable by the runtime
    a = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch in (1, 3):
        frames = rng.integers(0, 256, (batch, 64, 96, 3), dtype=np.uint8)
        state = rng.standard_normal((batch, 25, 64)).astype(np.float32)
        want = a.run(None, {"frames": frames, "state": state})
        got = b.run(None, {"frames": frames, "state": state})
        for g, w in zip(got, want, strict=True):
            assert np.abs(g - w).max() <= 1e-5


def test_graph_without_attention_is_left_alone() -> None:
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=-1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph)
    before = model.SerializeToString()
    assert fuse_attention(model) == 0
    assert model.SerializeToString() == before
