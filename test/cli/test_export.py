"""`rvm-ros export`: checked ONNX (fp32, int8) of the official tiny model; engine refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from rvm_ros.cli import main


def test_export_onnx_reproduces_official_features(
    fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny.onnx"
    rc = main(
        [
            "export",
            "--checkpoint",
            str(fixtures_dir / "rvm_tiny_params.npz"),
            "--height",
            "128",
            "--width",
            "192",
            "--max-batch",
            "2",
            "--out",
            str(out),
            "--summary",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "onnx.checker: ok; ONNX Runtime vs torch max abs error" in captured.err
    assert f"wrote {out} (onnx, fp32, tiny-" in captured.out
    assert "Graph Input" in captured.out  # polygraphy summary
    onnx.checker.check_model(str(out))
    # the exported step reproduces the official batch-2 stream (resized position table)
    with np.load(fixtures_dir / "rvm_tiny_io.npz") as io:
        video, want = io["stream2_video"], io["stream2_features"]
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    state = np.zeros((2, 97, 64), np.float32)
    for t in range(video.shape[1]):
        feats, state = sess.run(None, {"frames": video[:, t], "state": state})
        assert np.abs(feats - want[:, t]).max() <= 1e-4


def test_export_int8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny.int8.onnx"
    args = ["export", "--checkpoint", "random:tiny", "--height", "32", "--width", "32"]
    rc = main([*args, "--precision", "int8", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "int8: mean per-token cosine vs float32 0.99" in captured.err
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--precision", "fp16"], "precision 'fp16' is not available for --format onnx"),
        (["--height", "100"], "--height must be a positive multiple of 16 up to 4096, got 100"),
        (["--width", "100000"], "--width must be a positive multiple of 16 up to 4096"),
        (["--max-batch", "0"], "--max-batch must be >= 1, got 0"),
    ],
)
def test_export_bad_arguments(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.onnx"
    rc = main(["export", "--checkpoint", "random:tiny", "--out", str(out), *extra])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_export_engine_without_tensorrt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here; the engine build is tested in test/runtime")
    except ImportError:
        pass
    out = tmp_path / "x.plan"
    rc = main(["export", "--checkpoint", "random:tiny", "--format", "engine", "--out", str(out)])
    assert rc == 2
    assert "cannot build a TensorRT engine: tensorrt cannot be imported" in capsys.readouterr().err
    assert not out.exists()


def test_export_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["export", "--checkpoint", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "x")])
    assert rc == 2
    assert "nope.npz" in capsys.readouterr().err
