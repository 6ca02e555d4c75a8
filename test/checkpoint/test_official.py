"""The official key remap as pure dict -> dict functions (no files involved)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvm_ros.checkpoint.errors import CheckpointError
from rvm_ros.checkpoint.official import (
    config_from_official_shapes,
    official_to_torch,
    torch_to_official,
)
from rvm_ros.model import RVMConfig


@pytest.fixture(scope="module")
def tiny_arrays(fixtures_dir: Path) -> dict[str, np.ndarray]:
    with np.load(fixtures_dir / "rvm_tiny_params.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def tiny_config(tiny_arrays: dict[str, np.ndarray]) -> RVMConfig:
    return config_from_official_shapes({k: v.shape for k, v in tiny_arrays.items()})


def test_round_trip_is_identity(tiny_arrays: dict[str, np.ndarray], tiny_config: RVMConfig) -> None:
    state = official_to_torch(tiny_arrays, tiny_config, with_decoder=True)
    back = torch_to_official(state, tiny_config, with_decoder=True)
    assert set(back) == set(tiny_arrays)
    for key, array in tiny_arrays.items():
        np.testing.assert_array_equal(back[key], array.astype(np.float32), err_msg=key)


def test_hand_checked_entries(tiny_arrays: dict[str, np.ndarray], tiny_config: RVMConfig) -> None:
    state = official_to_torch(tiny_arrays, tiny_config, with_decoder=True)
    d = tiny_config.dim
    # Dense kernels are [fan_in, fan_out] in Flax, nn.Linear weights [fan_out, fan_in].
    kernel = tiny_arrays["rnn_core/input_update/kernel"]
    np.testing.assert_array_equal(state["core.input_update.weight"], kernel.T)
    # Attention query kernel [D, heads, head_dim] -> Linear weight [heads*head_dim, D]:
    # row h*hd + j of the torch weight is column (h, j) of the Flax kernel.
    q = tiny_arrays["encoder/layers_0/attention/query/kernel"]
    heads, hd = q.shape[1], q.shape[2]
    w = state["encoder.layers.0.attention.query.weight"]
    assert w.shape == (heads * hd, d)
    np.testing.assert_array_equal(w[1 * hd + 2], q[:, 1, 2])
    # Output kernel [heads, head_dim, D] -> [D, heads*head_dim].
    o = tiny_arrays["encoder/layers_0/attention/out/kernel"]
    np.testing.assert_array_equal(
        state["encoder.layers.0.attention.out.weight"][:, hd + 2], o[1, 2]
    )
    # LayerNorm scale keeps its values under the torch name.
    np.testing.assert_array_equal(
        state["encoder.norm.weight"], tiny_arrays["encoder/LayerNorm_0/scale"]
    )
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in state.values())


def test_missing_unexpected_and_misshaped_keys(
    tiny_arrays: dict[str, np.ndarray], tiny_config: RVMConfig
) -> None:
    missing = dict(tiny_arrays)
    del missing["cls_token"]
    with pytest.raises(CheckpointError, match="missing key 'cls_token'"):
        official_to_torch(missing, tiny_config, with_decoder=True)
    extra = {**tiny_arrays, "stray/kernel": np.zeros(3, np.float32)}
    with pytest.raises(CheckpointError, match=r"not consumed: stray/kernel"):
        official_to_torch(extra, tiny_config, with_decoder=True)
    bad = {**tiny_arrays, "cls_token": np.zeros((1, 3), np.float32)}
    with pytest.raises(CheckpointError, match="'cls_token' has shape"):
        official_to_torch(bad, tiny_config, with_decoder=True)
    state = official_to_torch(tiny_arrays, tiny_config, with_decoder=True)
    del state["encoder.cls_token"]
    with pytest.raises(CheckpointError, match=r"missing parameter 'encoder\.cls_token'"):
        torch_to_official(state, tiny_config, with_decoder=True)
