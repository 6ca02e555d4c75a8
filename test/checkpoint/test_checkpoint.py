"""Checkpoints: official .npz validation and conversion, project .safetensors, load_model."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import rvm_ros
from rvm_ros.checkpoint import load as ckpt
from rvm_ros.checkpoint import load_model
from rvm_ros.checkpoint import npz as npz_module
from rvm_ros.checkpoint.convert import convert
from rvm_ros.checkpoint.errors import CheckpointError
from rvm_ros.checkpoint.npz import read_npz_header
from rvm_ros.checkpoint.official import official_layout, state_to_official
from rvm_ros.fsutil import file_sha256
from rvm_ros.model import RVMConfig


@pytest.fixture(scope="module")
def tiny_arrays(fixtures_dir: Path) -> dict[str, np.ndarray]:
    with np.load(fixtures_dir / "rvm_tiny_params.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ------------------------------------------------------------------ good files


def test_convert_tiny_round_trip(fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "rvm_tiny_params.npz"
    out = tmp_path / "tiny.safetensors"
    config = convert(src, out)
    assert config == RVMConfig.from_variant("tiny")
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert RVMConfig.from_json(meta["rvm_config"]) == config
    assert meta["source_sha256"] == _sha(src)

    official = load_model(src)
    converted = load_model(out)
    assert official.model_id == f"tiny-{_sha(src)[:12]}"
    assert converted.model_id == f"tiny-{_sha(out)[:12]}"
    a, b = official.state_dict(), converted.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and back to the official layout, bit for bit
    with np.load(src, allow_pickle=False) as data:
        back = state_to_official(converted)
        assert set(back) == set(data.files)
        for k in data.files:
            np.testing.assert_array_equal(back[k], data[k], err_msg=k)


def test_convert_then_encode_matches_fixture(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.safetensors"
    convert(fixtures_dir / "rvm_tiny_params.npz", out)
    model = load_model(out)
    with np.load(fixtures_dir / "rvm_tiny_io.npz") as io_:
        video, expected = io_["stream_video"], io_["stream_features"]
    state = model.init_state(1, 256, 256)
    with torch.inference_mode():
        for t in range(video.shape[1]):
            feats, state = model.step(torch.from_numpy(video[:, t]), state)
            assert np.abs(feats.numpy() - expected[:, t]).max() <= 1e-4


def test_l_manifest_layout(fixtures_dir: Path) -> None:
    manifest = json.loads((fixtures_dir / "rvm_L_manifest.json").read_text())
    layout = {e.official: e.shape for e in official_layout(RVMConfig.from_variant("L"))}
    params = {k: tuple(v) for k, v in manifest["params"].items()}
    assert layout == params
    assert sum(int(np.prod(s)) for s in layout.values()) == manifest["total_params"]
    core = official_layout(RVMConfig.from_variant("L"), with_decoder=False)
    assert sum(int(np.prod(e.shape)) for e in core) == manifest["encoder_core_params"]


@pytest.mark.parametrize("variant", ["mu", "Ti", "S", "M", "B", "L", "H", "tiny"])
def test_every_size_read_from_shapes(variant: str) -> None:
    config = RVMConfig.from_variant(variant)
    shapes = {e.official: e.shape for e in official_layout(config)}
    assert ckpt.config_from_official_shapes(shapes) == config


def test_variant_named_by_encoder_sizes() -> None:
    # S with core / decoder sizes other than our defaults is still recognised as S
    base = RVMConfig.from_variant("S").to_dict()
    other = RVMConfig.from_dict({**base, "core_heads": 12, "core_mlp": 512, "dec_dim": 256})
    shapes = {e.official: e.shape for e in official_layout(other)}
    got = ckpt.config_from_official_shapes(shapes)
    assert got.variant == "S"
    assert (got.core_heads, got.core_mlp, got.dec_dim) == (12, 512, 256)


def _write_streamed_npz(path: Path, shapes: dict[str, tuple[int, ...]], seed: int) -> None:
    """A float32 .npz written one member at a time (keeps memory low for RVM-L)."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, shape in shapes.items():
            array = rng.standard_normal(shape, dtype=np.float32)
            array *= 0.02
            if key.endswith("scale"):
                array += 1.0
            with zf.open(key + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)


def test_random_l_from_manifest_converts_and_steps(fixtures_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((fixtures_dir / "rvm_L_manifest.json").read_text())
    shapes = {k: tuple(v) for k, v in manifest["params"].items()}
    src = tmp_path / "pretrain_rvm_large16_random.npz"
    _write_streamed_npz(src, shapes, seed=0)
    out = tmp_path / "large.safetensors"
    config = convert(src, out, progress=False)
    src.unlink()  # free the disk early
    assert config.variant == "L"
    assert config == RVMConfig.from_variant("L")
    model = load_model(out)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == manifest["total_params"]
    frames = torch.randint(0, 256, (1, 32, 48, 3), dtype=torch.uint8)
    with torch.inference_mode():
        feats, _ = model.step(frames, model.init_state(1, 32, 48))
    assert feats.shape == (1, 1 + 2 * 3, 1024)
    assert torch.isfinite(feats).all()


def test_custom_sizes_read_from_shapes(tmp_path: Path) -> None:
    # widths, depths and head counts come from the arrays, not from a variant name
    config = RVMConfig(
        dim=48,
        enc_layers=3,
        enc_heads=6,
        enc_mlp=96,
        core_layers=1,
        core_heads=2,
        core_mlp=64,
        dec_dim=24,
        dec_layers=1,
        dec_heads=3,
        dec_mlp=40,
    )
    model = rvm_ros.model.RVM(config)
    src = _write_npz(tmp_path / "custom.npz", state_to_official(model))
    loaded = load_model(src)
    assert loaded.config == config
    assert loaded.model_id.startswith("custom-")
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    s0 = model.init_state(2, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.step(frames, s0)[0], model.step(frames, s0)[0])


def test_without_decoder(tiny_arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    enc_core = {
        k: v
        for k, v in tiny_arrays.items()
        if not k.startswith(("decoder", "mask_token", "delta_embedder", "detokenizer"))
    }
    src = _write_npz(tmp_path / "enc.npz", enc_core)
    out = tmp_path / "enc.safetensors"
    convert(src, out)
    model = load_model(out)
    assert model.decoder is None
    with pytest.raises(RuntimeError, match="no decoder"):
        x = torch.zeros(1, 1, 32, 32, 3, dtype=torch.uint8)
        model.reconstruct(x, x, None, torch.zeros(1, 1, 1, dtype=torch.long))


def test_random_models() -> None:
    a = load_model("random:tiny:5")
    b = load_model("random:tiny:5")
    c = load_model("random:tiny")
    assert a.model_id == "tiny-random5" and c.model_id == "tiny-random0"
    assert torch.equal(a.encoder.cls_token, b.encoder.cls_token)
    assert not torch.equal(a.encoder.cls_token, c.encoder.cls_token)
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    for bad in ("random:XL", "random:tiny:x", "random:", "random:tiny:1:2"):
        with pytest.raises(CheckpointError, match="random"):
            load_model(bad)


def test_lazy_load_model_attribute() -> None:
    assert rvm_ros.load_model is load_model


def test_dtype_and_device() -> None:
    model = load_model("random:tiny", dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.init_state(1, 32, 32).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unsupported dtype"):
        load_model("random:tiny", dtype=torch.int8)


# ------------------------------------------------------------------ bad files


def _convert_fails(src: Path, tmp_path: Path, match: str) -> None:
    out = tmp_path / "out.safetensors"
    before = {p.name for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointError, match=match):
        convert(src, out)
    assert not out.exists()
    assert _leftovers(tmp_path, before) == [], "no partial output may be left behind"


def test_missing_key(tiny_arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    arrays = dict(tiny_arrays)
    del arrays["rnn_core/transformer/xa_blocks_1/mlp/dense_out/bias"]
    src = _write_npz(tmp_path / "missing.npz", arrays)
    _convert_fails(
        src, tmp_path, r"missing key\(s\): rnn_core/transformer/xa_blocks_1/mlp/dense_out/bias"
    )


def test_unexpected_key(tiny_arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    arrays = {**tiny_arrays, "encoder/layers_0/extra/kernel": np.zeros((2, 2), np.float32)}
    src = _write_npz(tmp_path / "extra.npz", arrays)
    _convert_fails(src, tmp_path, r"unexpected key\(s\): encoder/layers_0/extra/kernel")


def test_shape_mismatch(tiny_arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    arrays = {**tiny_arrays, "encoder/layers_1/mlp/dense_in/bias": np.zeros(255, np.float32)}
    src = _write_npz(tmp_path / "shape.npz", arrays)
    _convert_fails(
        src,
        tmp_path,
        r"shape mismatch: encoder/layers_1/mlp/dense_in/bias \(255,\) \(expected \(256,\)\)",
    )


def test_layer_gap(tiny_arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    arrays = {
        (k.replace("encoder/layers_1/", "encoder/layers_2/")): v for k, v in tiny_arrays.items()
    }
    src = _write_npz(tmp_path / "gap.npz", arrays)
    _convert_fails(src, tmp_path, r"encoder/layers_1 is missing")


def test_truncated_file(fixtures_dir: Path, tmp_path: Path) -> None:
    data = (fixtures_dir / "rvm_tiny_params.npz").read_bytes()
    src = tmp_path / "truncated.npz"
    src.write_bytes(data[: len(data) // 2])
    _convert_fails(src, tmp_path, "not a readable .npz archive")


def test_not_a_zip(tmp_path: Path) -> None:
    src = tmp_path / "text.npz"
    src.write_text("hello, not a checkpoint\n")
    _convert_fails(src, tmp_path, "not a readable .npz archive")


def test_not_rvm(tmp_path: Path) -> None:
    src = _write_npz(tmp_path / "other.npz", {"weights": np.zeros((3, 3), np.float32)})
    _convert_fails(src, tmp_path, "missing key 'cls_token': not an RVM checkpoint")


def test_pickled_member_rejected(tiny_arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    arrays = {**tiny_arrays, "cls_token": np.array([{"x": 1}], dtype=object)}
    src = tmp_path / "pickle.npz"
    np.savez(src, **arrays)  # type: ignore[arg-type]
    _convert_fails(src, tmp_path, "key 'cls_token' has dtype object, expected floating point")


def test_member_shorter_than_header(tiny_arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    src = tmp_path / "short.npz"
    with zipfile.ZipFile(src, "w") as zf:
        for key, array in tiny_arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, allow_pickle=False)
            data = buf.getvalue()
            if key == "encoder/LayerNorm_0/scale":
                data = data[:-8]
            zf.writestr(key + ".npy", data)
    _convert_fails(src, tmp_path, "key 'encoder/LayerNorm_0/scale' holds 248 bytes of data")


def test_inconsistent_file_rejected_before_reading_arrays(
    tiny_arrays: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = {**tiny_arrays, "rnn_core/state_reset/kernel": np.zeros((64, 32), np.float32)}
    src = _write_npz(tmp_path / "bad.npz", arrays)

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("array data was read before the shapes were validated")

    monkeypatch.setattr(npz_module.np, "load", no_load)
    with pytest.raises(CheckpointError, match=r"rnn_core/state_reset/kernel \(64, 32\)"):
        ckpt.read_official(src)


def test_header_only(fixtures_dir: Path) -> None:
    header = read_npz_header(fixtures_dir / "rvm_tiny_params.npz")
    assert header.shapes["tokenizer/patch_embedding/Conv_0/kernel"] == (1, 16, 16, 3, 64)
    assert all(d == np.float32 for d in header.dtypes.values())
    assert header.nbytes == 4 * sum(int(np.prod(s)) for s in header.shapes.values())


def test_safetensors_without_config(tmp_path: Path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="without 'rvm_config' metadata"):
        load_model(path)


def test_safetensors_with_wrong_shapes(tmp_path: Path) -> None:
    model = load_model("random:tiny")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["core.state_norm.weight"] = torch.ones(63)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path), metadata={"rvm_config": model.config.to_json()})
    with pytest.raises(CheckpointError, match=r"core\.state_norm\.weight \(63,\) \(expected"):
        load_model(path)


def test_safetensors_garbage(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(path)


def test_unknown_suffix_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"unknown checkpoint type '\.pt'"):
        load_model(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.npz")


def test_the_same_weights_saved_in_two_processes_have_one_sha256(tmp_path: Path) -> None:
    """Issue 27: the writer's metadata order changed per process (another sha256 and id)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from rvm_ros.checkpoint import random_model\n"
        "from rvm_ros.checkpoint.safetensors import save_safetensors\n"
        "m = random_model('tiny', 0)\n"
        "save_safetensors(m.state_dict(), m.config, sys.argv[1], source_sha256='ab' * 32)\n"
    )
    paths = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for p in paths:
        subprocess.run([sys.executable, "-c", code, str(p)], check=True, timeout=120)
    digests = {file_sha256(p) for p in paths}
    assert len(digests) == 1
    assert len({load_model(p).model_id for p in paths}) == 1


def test_bag_scan_damage_is_a_project_error() -> None:
    from rvm_ros.bags.mcap_scan import McapDamage
    from rvm_ros.bags.sqlite_scan import SqliteDamage
    from rvm_ros.errors import RvmRosError

    for cls in (McapDamage, SqliteDamage):
        assert issubclass(cls, RvmRosError) and cls("x").cause == "bag_damaged"
