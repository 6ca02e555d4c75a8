"""`rvm-ros fit-center`: a centred copy of a checkpoint that every backend runs alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rvm_ros.checkpoint import load_model
from rvm_ros.checkpoint.card import read_card
from rvm_ros.cli import main

# Generated scenes only, small frames: seconds.
DATA = ["data.videos=[]", "data.sample_images=false", "data.height=64", "data.width=64"]
FIT = ["--clips", "3", "--frames", "3", "--warmup", "1"]


@pytest.fixture(scope="module")
def centred(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("fit") / "centred.safetensors"
    ckpt = str(fixtures_dir / "rvm_tiny_params.npz")
    assert main(["fit-center", "--checkpoint", ckpt, *FIT, "--out", str(out), *DATA]) == 0
    return out


def test_fit_center_writes_a_centred_copy(centred: Path, fixtures_dir: Path) -> None:
    model = load_model(centred)
    plain = load_model(fixtures_dir / "rvm_tiny_params.npz")
    assert model.config.center_grid == (4, 4)
    for name, value in plain.state_dict().items():
        assert torch.equal(model.state_dict()[name], value)  # the weights are untouched
    assert "feature centre: mean state of 3 training sequences" in read_card(centred).notes


@pytest.mark.parametrize("size", [(64, 64), (64, 96)], ids=["fitted grid", "resized centre"])
@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_backends_publish_the_centred_features(
    centred: Path,
    backend: str,
    size: tuple[int, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RVM_ROS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, *size, 3), dtype=np.uint8)
    np.save(tmp_path / "f.npy", frames)
    out = tmp_path / "feats.npy"
    args = ["--checkpoint", str(centred), "--input", str(tmp_path / "f.npy")]
    assert main(["encode", *args, "--output", str(out), "--backend", backend]) == 0
    model = load_model(centred)
    state = model.init_state(1, *size)
    want = []
    with torch.no_grad():
        for t in range(3):
            f, state = model.step(torch.from_numpy(frames[t : t + 1]), state)
            want.append(f[0].numpy())
    got = np.load(out)[0]  # [T, N, D]
    np.testing.assert_allclose(got, np.stack(want), atol=1e-4)
    # The centre is really applied: the state differs from the features by it.
    grid = model.config.grid(*size)
    table = model.feature_center(*grid).numpy()  # type: ignore[misc]
    np.testing.assert_allclose(got[-1] + table, state[0].numpy(), atol=1e-4)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--warmup", "3"], "--warmup 3 must be below --frames 3"),
        (["--out-suffix"], "--out must end in .safetensors"),
        (["--clips", "0"], "--clips"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    extra: list[str],
    message: str,
    fixtures_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / ("c.pt" if extra == ["--out-suffix"] else "c.safetensors")
    args = [a for a in extra if a != "--out-suffix"]
    ckpt = str(fixtures_dir / "rvm_tiny_params.npz")
    rc = main(["fit-center", "--checkpoint", ckpt, *FIT, *args, "--out", str(out), *DATA])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_refuses_to_overwrite_its_input(centred: Path, tmp_path: Path) -> None:
    copy = tmp_path / "in.safetensors"
    copy.write_bytes(centred.read_bytes())
    before = copy.read_bytes()
    rc = main(["fit-center", "--checkpoint", str(copy), *FIT, "--out", str(copy), "--force", *DATA])
    assert rc != 0
    assert copy.read_bytes() == before
