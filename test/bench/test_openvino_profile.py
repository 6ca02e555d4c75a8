"""OpenVINO per-layer profile: classes, precisions, the int8 leftovers, the CLI's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from markers import needs_openvino

from rvm_ros.bench.openvino_profile import (
    LayerTime,
    aggregate,
    classify,
    exec_precision,
    main,
    profile_step,
    summarise,
)
from rvm_ros.runtime.backends.openvino import LayerRecord


@pytest.mark.parametrize(
    ("exec_type", "want"),
    [
        ("brgemm_avx512_amx_I8", "int8"),
        ("jit_avx512_u8", "int8"),
        ("brgemm_avx512_bf16", "bf16"),
        ("gemm_mlas_f32", "f32"),
        ("jit_avx512_f16", "f16"),
        ("undef", "-"),
    ],
)
def test_exec_precision_reads_the_kernel_name(exec_type: str, want: str) -> None:
    assert exec_precision(exec_type) == want


@pytest.mark.parametrize(
    ("node_type", "name", "want"),
    [
        ("FullyConnected", "node_linear_3", "MatMul/FC int8"),
        ("Convolution", "node_conv", "Convolution int8"),
        ("Subgraph", "node_matmul_5", "attention (QK, softmax, V)"),
        ("Softmax", "node_softmax", "attention (QK, softmax, V)"),
        ("Subgraph", "node_transpose_4,node_matmul,node_softmax", "attention (QK, softmax, V)"),
        ("MVN", "MVN_37", "LayerNorm (MVN + affine)"),
        ("Subgraph", "node_layer_norm_2", "LayerNorm (MVN + affine)"),
        ("Gelu", "node_gelu", "GELU"),
        ("Reorder", "x_f32_bf16_y", "Reorder/Convert"),
        ("FakeQuantize", "fq", "quantise (FakeQuantize)"),
        ("Subgraph", "node_add_39", "Eltwise"),
        ("Transpose", "node_permute", "layout (Transpose/Concat/...)"),
        ("TopK", "t", "other (TopK)"),
    ],
)
def test_classify(node_type: str, name: str, want: str) -> None:
    assert classify(node_type, name, "int8") == want


def test_aggregate_takes_the_mean_between_snapshots() -> None:
    # The CPU counters are means since compile: 2 warm-up steps at 10 us, then 3 at 4 us.
    before = [LayerRecord("fc", "FullyConnected", "brgemm_avx512_bf16", 10.0)]
    after = [LayerRecord("fc", "FullyConnected", "brgemm_avx512_bf16", (20.0 + 12.0) / 5)]
    (layer,) = aggregate(before, 2, after, 5)
    assert layer.ms == pytest.approx(0.004)
    assert (layer.op_class, layer.precision) == ("MatMul/FC bf16", "bf16")


def test_summarise_lists_matrix_layers_left_out_of_int8() -> None:
    layers = [
        LayerTime("a", "FullyConnected", "brgemm_avx512_amx_I8", "MatMul/FC int8", "int8", 2.0),
        LayerTime("b", "FullyConnected", "brgemm_avx512_bf16", "MatMul/FC bf16", "bf16", 1.0),
        LayerTime("c", "MatMul", "jit_f32", "MatMul/FC f32", "f32", 3.0),
        LayerTime("d", "MVN", "jit_avx512_bf16", "LayerNorm (MVN + affine)", "bf16", 0.5),
    ]
    p = summarise("int8", layers, [7.0, 5.0, 6.0])
    assert [x.name for x in p.float_matrix_layers] == ["c", "b"]
    assert p.layers_ms == pytest.approx(6.5) and p.step_ms_p50 == 6.0
    assert next(iter(p.classes)) == "MatMul/FC f32"
    assert summarise("bf16", layers, [1.0]).float_matrix_layers == []


@needs_openvino
def test_profile_of_a_tiny_model_at_each_precision(tmp_path: Path) -> None:
    profiles = profile_step(
        "random:tiny",
        ["fp32", "bf16", "int8"],
        height=32,
        width=32,
        frames=4,
        warmup=1,
        threads=1,
        cache_dir=str(tmp_path),
    )
    by = {p.precision: p for p in profiles}
    assert set(by) == {"fp32", "bf16", "int8"}
    for p in profiles:
        assert p.steps == 3 and p.layers_ms > 0 and p.step_ms_p50 > 0
        assert sum(p.classes.values()) == pytest.approx(p.layers_ms)
        assert p.cosine_vs_fp32 is not None and p.cosine_vs_fp32 > 0.99
    assert by["fp32"].cosine_vs_fp32 == pytest.approx(1.0)
    assert any(c.startswith("MatMul/FC f32") for c in by["fp32"].classes)
    assert any(c.startswith("MatMul/FC bf16") for c in by["bf16"].classes)
    assert by["int8"].classes.get("MatMul/FC int8", 0.0) > 0
    assert all(layer.precision != "int8" for layer in by["int8"].float_matrix_layers)


@needs_openvino
def test_cli_writes_markdown_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md, js = tmp_path / "p.md", tmp_path / "p.json"
    args = ["--checkpoint", "random:tiny", "--height", "32", "--width", "32", "--frames", "3"]
    args += ["--warmup", "1", "--precision", "bf16", "--threads", "1"]
    args += ["--cache-dir", str(tmp_path), "--markdown", str(md), "--json", str(js)]
    assert main(args) == 0
    assert "| op class | bf16 |" in md.read_text()
    data = json.loads(js.read_text())
    assert data["profiles"][0]["precision"] == "bf16" and data["profiles"][0]["layers"]
    assert "op class" in capsys.readouterr().out


def test_cli_refuses_fewer_frames_than_warmup(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--frames", "2", "--warmup", "2"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_cli_refuses_a_bad_int8_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--int8-recipe", "fast:0.5", "--precision", "int8"]) == 1
    assert "preset" in capsys.readouterr().err
