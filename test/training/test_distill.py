"""`rvm-ros distill` on a tiny teacher and student: exact resume, cache, sizes, adapter, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rvm_ros.checkpoint import load_model, save_safetensors
from rvm_ros.checkpoint.random import random_model
from rvm_ros.model import RVM, RVMConfig
from rvm_ros.training import TrainConfigError, TrainError
from rvm_ros.training.distill import distill
from rvm_ros.training.distill_config import DistillConfig, load_distill_config
from rvm_ros.training.distill_objective import init_from_teacher, map_grid, stream

# A tiny custom student of the `random:tiny` teacher (D 64, 2 + 2 blocks): D 64, 1 + 1.
TINY = (
    "teacher=random:tiny",
    "student=custom",
    "model.dim=64",
    "model.enc_layers=1",
    "model.enc_heads=4",
    "model.core_layers=1",
    "model.core_heads=4",
    "model.dec_dim=32",
    "model.dec_layers=1",
    "model.dec_heads=2",
    "data.height=32",
    "data.width=32",
    "data.source_frames=3",
    "data.procedural=1",
    "data.workers=0",
    "batch_size=4",
    "log_every=1",
    "progress=false",
    "threads=1",
    "precision=fp32",
    "optim.warmup_steps=2",
    "optim.lr=0.002",
)


def tiny_config(out_dir: Path, *overrides: str) -> DistillConfig:
    """The tiny distillation configuration writing to ``out_dir`` (extra overrides win)."""
    return load_distill_config(None, [*TINY, f"out_dir={out_dir}", *overrides])


def _run(cfg: DistillConfig, stop_at: int | None = None) -> dict[int, dict[str, float]]:
    seen: dict[int, dict[str, float]] = {}
    distill(cfg, on_step=lambda s, v: seen.__setitem__(s, dict(v)), stop_at=stop_at)
    return seen


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(a), load_file(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("cache", [False, True], ids=["on-the-fly", "cached"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path: Path, cache: bool) -> None:
    extra = ["steps=4", "checkpoint_every=2", "precision=bf16"]
    if cache:  # a pool of 4 clips = 1 epoch per step: steps 2-4 read targets back
        extra += ["cache_clips=4"]
    if cache:
        a = tiny_config(tmp_path / "a", *extra, f"teacher_cache={tmp_path / 'cache_a'}")
        b = tiny_config(tmp_path / "b", *extra, f"teacher_cache={tmp_path / 'cache_b'}")
    else:
        a, b = (tiny_config(tmp_path / n, *extra) for n in ("a", "b"))
    straight = _run(a)
    first = _run(b, stop_at=2)
    resumed = _run(b)
    assert sorted(first) == [1, 2] and sorted(resumed) == [3, 4]
    for step in (1, 2):
        assert first[step] == straight[step]
    for step in (3, 4):
        assert resumed[step]["loss"] == straight[step]["loss"]  # bit for bit
    assert _same_weights(tmp_path / "a" / "last.safetensors", tmp_path / "b" / "last.safetensors")
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4]
    teacher_s = [json.loads(x)["teacher_seconds"] for x in lines]
    assert teacher_s[1] > 0 and teacher_s[3] >= teacher_s[1]  # summed over the resume
    if cache:
        last = json.loads(lines[-1])
        assert last["cache_hits"] > 0  # the resumed run read the pool's targets back
        assert len(list((tmp_path / "cache_b").glob("clip_*.safetensors"))) == 4


def test_student_learns_and_checkpoint_loads_everywhere(tmp_path: Path) -> None:
    seen = _run(tiny_config(tmp_path, "steps=12", "checkpoint_every=6", "keep_checkpoints=1"))
    assert seen[12]["cosine"] > seen[1]["cosine"] + 0.05
    for name in ("config.yaml", "metrics.jsonl", "loss.png", "last.safetensors", "last.state.pt"):
        assert (tmp_path / name).is_file(), name
    assert [p.name for p in tmp_path.glob("step_*.safetensors")] == ["step_0000012.safetensors"]
    student = load_model(tmp_path / "last.safetensors")
    assert (student.config.dim, student.config.enc_layers, student.config.core_layers) == (64, 1, 1)
    # The project format with the frozen architecture inside: it streams like any model.
    feats, _ = student.step(
        torch.zeros(1, 32, 32, 3, dtype=torch.uint8), student.init_state(1, 32, 32)
    )
    assert feats.shape == (1, 5, 64)


def test_narrower_student_at_another_size_trains_an_adapter(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path,
        "steps=2",
        "model.dim=32",
        "model.enc_heads=2",
        "model.core_heads=2",
        "data.height=64",
        "data.width=64",
        "student_height=32",
        "student_width=32",
        "loss.encoder=0.5",
    )
    seen = _run(cfg)
    assert np.isfinite(seen[2]["loss"]) and seen[2]["encoder"] > 0  # encoder target on
    adapter = load_file(tmp_path / "last.adapter.safetensors")
    assert adapter["weight"].shape == (64, 32)  # student 32 -> teacher 64


def test_distils_on_a_rosbag2_image_topic(tmp_path: Path, moving_video: Path) -> None:
    from rvm_ros.bags.make_bag import make_bag

    bag = tmp_path / "bag"
    make_bag([moving_video, moving_video], bag, compressed=True)  # two camera topics
    seen = _run(tiny_config(tmp_path / "run", "steps=1", "data.procedural=0", f"data.bags=[{bag}]"))
    assert np.isfinite(seen[1]["loss"]) and 0 < seen[1]["cosine"] < 1


def test_resume_with_another_configuration_is_refused(tmp_path: Path) -> None:
    _run(tiny_config(tmp_path, "steps=3", "optim.warmup_steps=1"), stop_at=2)
    with pytest.raises(TrainError, match="another configuration"):
        distill(tiny_config(tmp_path, "steps=3", "optim.warmup_steps=1", "loss.mse=0.5"))
    with pytest.raises(TrainError, match="another configuration"):  # past the warm-up
        distill(tiny_config(tmp_path, "steps=5", "optim.warmup_steps=1"))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("loss.bogus=1", "unknown key"),
        ("teacher_cache=/tmp/x", "cache_clips"),
        ("loss.skip_frames=3", "skip_frames"),
        ("precision=fp16", "precision"),
    ],
)
def test_bad_configuration_is_one_clear_error(tmp_path: Path, override: str, match: str) -> None:
    with pytest.raises(TrainConfigError, match=match):
        tiny_config(tmp_path, override)


def test_unknown_student_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="no variant"):
        distill(tiny_config(tmp_path / "run", "student=studnet192"))
    assert not (tmp_path / "run").exists()


def test_map_grid_averages_cells_and_keeps_cls() -> None:
    tokens = torch.arange(1 + 16, dtype=torch.float32).reshape(1, 17, 1).repeat(1, 1, 2)
    out = map_grid(tokens, (4, 4), (2, 2))
    assert out.shape == (1, 5, 2)
    assert out[0, 0, 0] == 0  # CLS unchanged
    # Top-left student cell = mean of teacher cells (0,0), (0,1), (1,0), (1,1) = tokens 1, 2, 5, 6.
    assert out[0, 1, 0] == pytest.approx((1 + 2 + 5 + 6) / 4)
    assert torch.equal(map_grid(tokens, (4, 4), (4, 4)), tokens)


def test_init_from_teacher_copies_the_first_blocks() -> None:
    teacher = random_model("tiny", seed=3)
    config = RVMConfig.from_dict(teacher.config.to_dict() | {"enc_layers": 1, "core_layers": 1})
    student = RVM(config, with_decoder=False)
    copied = init_from_teacher(student, teacher)
    assert "encoder.layers.0.mlp.dense_in.weight" in copied
    t, s = teacher.state_dict(), student.state_dict()
    assert torch.equal(
        s["encoder.layers.0.attention.query.weight"], t["encoder.layers.0.attention.query.weight"]
    )
    assert torch.equal(
        s["core.transformer.blocks.0.mlp.dense_out.weight"],
        t["core.transformer.blocks.0.mlp.dense_out.weight"],
    )
    # A teacher truncated the same way gives the student's output exactly.
    frames = torch.randint(0, 255, (1, 3, 32, 32, 3), dtype=torch.uint8)
    full = RVM(config, with_decoder=False)
    full.load_state_dict(student.state_dict())
    assert torch.equal(
        stream(student.eval(), frames, False)[0], stream(full.eval(), frames, False)[0]
    )


def test_student_exports_to_onnx_and_matches_torch(tmp_path: Path) -> None:
    """The node's export path, unchanged: ONNX Runtime and OpenVINO run the same export."""
    pytest.importorskip("onnxruntime")
    import importlib.util

    from rvm_ros.runtime import create_encoder

    _run(tiny_config(tmp_path / "run", "steps=1"))
    ckpt = tmp_path / "run" / "last.safetensors"
    student = load_model(ckpt)
    frames = np.random.default_rng(0).integers(0, 255, (3, 1, 32, 32, 3), dtype=np.uint8)
    backends = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    for backend in backends:  # one export in the shared cache, both runtimes
        runner = create_encoder(
            ckpt,
            backend=backend,
            height=32,
            width=32,
            max_batch=1,
            cache_dir=tmp_path / "onnx",
            threads=1,
        )
        state = student.init_state(1, 32, 32)
        with torch.no_grad():
            for frame in frames:
                ref, state = student.step(torch.from_numpy(frame), state)
                got = runner.step(frame, ["cam"])
                np.testing.assert_allclose(got, ref.numpy(), rtol=1e-3, atol=1e-4, err_msg=backend)
        runner.close()
    assert list((tmp_path / "onnx").rglob("*.onnx"))


def test_cli_distill_then_eval_distill(tmp_path: Path, moving_video: Path) -> None:
    from rvm_ros.cli import main

    teacher = tmp_path / "teacher.safetensors"
    model = random_model("tiny", seed=1)
    save_safetensors(model.state_dict(), model.config, teacher)
    run = tmp_path / "run"
    overrides = [o for o in TINY if not o.startswith("teacher=")]
    code = main(
        [
            "distill",
            "--teacher",
            str(teacher),
            *overrides,
            "steps=2",
            f"data.videos=[{moving_video}]",
            f"out_dir={run}",
        ]
    )
    assert code == 0
    out = tmp_path / "eval"
    args = [
        "eval-distill",
        "--teacher",
        str(teacher),
        "--student",
        str(run / "last.safetensors"),
        "--out",
        str(out),
        "--videos",
        str(moving_video),
        "--frames",
        "24",
        "--teacher-height",
        "32",
        "--teacher-width",
        "32",
        "--backends",
        "torch",
        "--repeats",
        "2",
        "--tracking-sequences",
        "1",
        "--reconstruction-clips",
        "1",
    ]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("report.md", "cosine.png", "pca.png"):
        assert (out / name).is_file(), name
    assert len(metrics["cosine_per_frame"][str(moving_video)]) == 24
    assert 0 < metrics["mean_cosine"] < 0.999
    # The teacher as its own student: cosine 1, every correspondence agrees.
    same = tmp_path / "same"
    assert main([*args[:3], "--student", str(teacher), *args[5:6], str(same), *args[7:]]) == 0
    m2 = json.loads((same / "metrics.json").read_text())
    assert m2["mean_cosine"] == pytest.approx(1.0, abs=1e-5)
    agree = m2["streaming"][str(moving_video)]["nn_agreement"]
    assert all(v == 1.0 for v in agree.values())
    # An existing output is refused without --force and left as it was.
    before = (same / "metrics.json").read_text()
    assert main([*args[:3], "--student", str(teacher), *args[5:6], str(same), *args[7:]]) == 2
    assert (same / "metrics.json").read_text() == before


@pytest.mark.parametrize("centred", [False, True], ids=["plain", "centred"])
def test_cli_distill_says_when_the_student_needs_its_own_centre(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], centred: bool
) -> None:
    from rvm_ros.cli import main
    from rvm_ros.training.center import with_center

    model = random_model("tiny", seed=1)
    if centred:
        grid = model.config.grid(32, 32)
        table = torch.randn(1 + grid[0] * grid[1], model.config.dim)
        model = with_center(model, table, grid)
    teacher = tmp_path / "teacher.safetensors"
    save_safetensors(model.state_dict(), model.config, teacher)
    overrides = [o for o in TINY if not o.startswith("teacher=")]
    run = tmp_path / "run"
    args = ["distill", "--teacher", str(teacher), *overrides, "steps=1", f"out_dir={run}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert ("rvm-ros fit-center --checkpoint" in out) is centred
    assert load_model(run / "last.safetensors").feature_center is None
