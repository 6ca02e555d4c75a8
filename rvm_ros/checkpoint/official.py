"""The official (Flax) key layout: names, shapes and array transforms to the torch model, and
the architecture read from an official file's shapes. Pure: no file I/O.

The remap itself is two pure dict -> dict functions, :func:`official_to_torch` (official
key -> array, to torch parameter name -> array) and :func:`torch_to_official` (back); the
``.npz`` reader and :func:`state_to_official` are thin callers of them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from rvm_ros.checkpoint.errors import CheckpointError
from rvm_ros.errors import key_differences, listing
from rvm_ros.model import RVM, RVMConfig
from rvm_ros.model.config import VARIANTS


def variant_of(config: RVMConfig) -> str:
    """Name of the official size whose encoder matches ``config``, else ``custom``.

    Only the encoder sizes (width, depth, heads, MLP, patch) are compared: they identify
    the released sizes, while the core and decoder sizes of S / B / H are not published
    and are taken from the checkpoint's shapes.
    """

    def key(c: RVMConfig) -> tuple[int, ...]:
        return (c.dim, c.enc_layers, c.enc_heads, c.enc_mlp, c.patch_size)

    for name in VARIANTS:
        if key(RVMConfig.from_variant(name)) == key(config):
            return name
    return "custom"


@dataclass(frozen=True)
class _Entry:
    official: str
    torch_name: str
    kind: str
    shape: tuple[int, ...]  # official shape


def _attention_entries(src: str, dst: str, dim: int, heads: int) -> list[_Entry]:
    hd = dim // heads
    out: list[_Entry] = []
    for proj in ("query", "key", "value"):
        out.append(_Entry(f"{src}/{proj}/kernel", f"{dst}.{proj}.weight", "qkv", (dim, heads, hd)))
        out.append(_Entry(f"{src}/{proj}/bias", f"{dst}.{proj}.bias", "qkv_bias", (heads, hd)))
    out.append(_Entry(f"{src}/out/kernel", f"{dst}.out.weight", "out", (heads, hd, dim)))
    out.append(_Entry(f"{src}/out/bias", f"{dst}.out.bias", "vec", (dim,)))
    return out


def _norm_entries(src: str, dst: str, dim: int) -> list[_Entry]:
    return [
        _Entry(f"{src}/scale", f"{dst}.weight", "vec", (dim,)),
        _Entry(f"{src}/bias", f"{dst}.bias", "vec", (dim,)),
    ]


def _dense_entries(src: str, dst: str, fan_in: int, fan_out: int) -> list[_Entry]:
    return [
        _Entry(f"{src}/kernel", f"{dst}.weight", "dense", (fan_in, fan_out)),
        _Entry(f"{src}/bias", f"{dst}.bias", "vec", (fan_out,)),
    ]


def _mlp_entries(src: str, dst: str, dim: int, hidden: int) -> list[_Entry]:
    return _dense_entries(f"{src}/dense_in", f"{dst}.dense_in", dim, hidden) + _dense_entries(
        f"{src}/dense_out", f"{dst}.dense_out", hidden, dim
    )


def _cross_transformer_entries(
    src: str, dst: str, dim: int, layers: int, heads: int, mlp: int
) -> list[_Entry]:
    out: list[_Entry] = []
    for i in range(layers):
        s, d = f"{src}/xa_blocks_{i}", f"{dst}.blocks.{i}"
        for norm in ("attention_norm", "ca_attention_norm", "mlp_norm"):
            out += _norm_entries(f"{s}/{norm}", f"{d}.{norm}", dim)
        out += _attention_entries(f"{s}/attention", f"{d}.attention", dim, heads)
        out += _attention_entries(f"{s}/ca_attention", f"{d}.ca_attention", dim, heads)
        out += _mlp_entries(f"{s}/mlp", f"{d}.mlp", dim, mlp)
    out += _norm_entries(f"{src}/output_norm", f"{dst}.output_norm", dim)
    return out


def official_layout(config: RVMConfig, with_decoder: bool = True) -> list[_Entry]:
    """Every official key of a model of this configuration, with its torch name and shape."""
    d, p = config.dim, config.patch_size
    out: list[_Entry] = [
        _Entry("cls_token", "encoder.cls_token", "vec", (1, d)),
        _Entry(
            "tokenizer/patch_embedding/Conv_0/kernel",
            "encoder.patch_embedding.weight",
            "patch",
            (1, p, p, 3, d),
        ),
        _Entry(
            "tokenizer/patch_embedding/Conv_0/bias", "encoder.patch_embedding.bias", "vec", (d,)
        ),
    ]
    for i in range(config.enc_layers):
        s, t = f"encoder/layers_{i}", f"encoder.layers.{i}"
        out += _norm_entries(f"{s}/attention_norm", f"{t}.attention_norm", d)
        out += _attention_entries(f"{s}/attention", f"{t}.attention", d, config.enc_heads)
        out += _norm_entries(f"{s}/mlp_norm", f"{t}.mlp_norm", d)
        out += _mlp_entries(f"{s}/mlp", f"{t}.mlp", d, config.enc_mlp)
    out += _norm_entries("encoder/LayerNorm_0", "encoder.norm", d)
    for gate in ("input_update", "input_reset", "state_update", "state_reset"):
        out.append(_Entry(f"rnn_core/{gate}/kernel", f"core.{gate}.weight", "dense", (d, d)))
    out.append(_Entry("rnn_core/state_layer_norm/scale", "core.state_norm.weight", "vec", (d,)))
    out += _cross_transformer_entries(
        "rnn_core/transformer",
        "core.transformer",
        d,
        config.core_layers,
        config.core_heads,
        config.core_mlp,
    )
    if with_decoder:
        dd = config.dec_dim
        out.append(_Entry("mask_token", "decoder.mask_token", "vec", (1, dd)))
        out += _dense_entries("decoder_embedder", "decoder.decoder_embedder", d, dd)
        out += _dense_entries("delta_embedder", "decoder.delta_embedder", 64, dd)
        out += _dense_entries("detokenizer/Dense_0", "decoder.detokenizer", dd, p * p * 3)
        out += _cross_transformer_entries(
            "decoder",
            "decoder.transformer",
            dd,
            config.dec_layers,
            config.dec_heads,
            config.dec_mlp,
        )
    return out


def _to_torch_layout(kind: str, array: np.ndarray) -> np.ndarray:
    result: np.ndarray
    if kind == "vec":
        result = array
    elif kind == "dense":
        result = array.T
    elif kind == "qkv_bias":
        result = array.reshape(-1)
    elif kind == "qkv":  # [D, h, hd] -> [h*hd, D]
        result = array.reshape(array.shape[0], -1).T
    elif kind in ("out", "patch"):  # [h, hd, D] / [1, p, p, 3, D] -> [D, fan_in]
        result = array.reshape(-1, array.shape[-1]).T
    else:
        raise AssertionError(kind)
    return result


def _from_torch_layout(kind: str, tensor: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    result: np.ndarray
    if kind in ("vec", "qkv_bias"):
        result = tensor.reshape(shape)
    elif kind == "dense":
        result = tensor.T
    elif kind in ("qkv", "out", "patch"):
        result = tensor.T.reshape(shape)
    else:
        raise AssertionError(kind)
    return result


def official_to_torch(
    arrays: Mapping[str, np.ndarray], config: RVMConfig, with_decoder: bool
) -> dict[str, np.ndarray]:
    """Official key -> array, to torch parameter name -> float32 array in torch layout.

    Pure (no I/O). ``arrays`` is read one key at a time, in layout order, so a lazy
    mapping (an open ``np.load`` archive) is never held in memory twice.

    Args:
        arrays: Official (Flax) key -> array, exactly the layout of ``config``.
        config: The architecture (e.g. from :func:`config_from_official_shapes`).
        with_decoder: Whether the decoder's keys are part of ``arrays``.

    Returns:
        Torch ``state_dict`` names -> C-contiguous float32 arrays.

    Raises:
        CheckpointError: A key is missing, has the wrong shape, or is left unconsumed.
    """
    out: dict[str, np.ndarray] = {}
    for entry in official_layout(config, with_decoder):
        if entry.official not in arrays:
            raise CheckpointError(f"missing key {entry.official!r}")
        array = np.asarray(arrays[entry.official])
        if tuple(array.shape) != entry.shape:
            raise CheckpointError(
                f"key {entry.official!r} has shape {tuple(array.shape)}, expected {entry.shape}"
            )
        data = _to_torch_layout(entry.kind, array.astype(np.float32, copy=False))
        out[entry.torch_name] = np.ascontiguousarray(data)
    consumed = {e.official for e in official_layout(config, with_decoder)}
    unconsumed = sorted(set(arrays) - consumed)
    if unconsumed:
        raise CheckpointError(f"key(s) not consumed: {listing(unconsumed)}")
    return out


def torch_to_official(
    state: Mapping[str, np.ndarray], config: RVMConfig, with_decoder: bool
) -> dict[str, np.ndarray]:
    """Torch parameter name -> array, to official key -> float32 array (the inverse).

    ``torch_to_official(official_to_torch(a, c, d), c, d)`` equals ``a`` (as float32).

    Raises:
        CheckpointError: A parameter of the layout is missing from ``state``.
    """
    out: dict[str, np.ndarray] = {}
    for entry in official_layout(config, with_decoder):
        if entry.torch_name not in state:
            raise CheckpointError(f"missing parameter {entry.torch_name!r}")
        tensor = np.asarray(state[entry.torch_name], dtype=np.float32)
        out[entry.official] = np.ascontiguousarray(
            _from_torch_layout(entry.kind, tensor, entry.shape)
        )
    return out


def _layer_count(shapes: Mapping[str, tuple[int, ...]], prefix: str, what: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)/")
    indices = {int(m.group(1)) for key in shapes if (m := pattern.match(key))}
    if not indices:
        raise CheckpointError(f"no {what} found (no key starts with {prefix!r}N/)")
    missing = sorted(set(range(max(indices) + 1)) - indices)
    if missing:
        raise CheckpointError(
            f"{what} indices are not contiguous: {prefix}{missing[0]} is missing "
            f"(found up to {prefix}{max(indices)})"
        )
    return len(indices)


def _shape(shapes: Mapping[str, tuple[int, ...]], key: str, ndim: int) -> tuple[int, ...]:
    if key not in shapes:
        raise CheckpointError(f"missing key {key!r}: not an RVM checkpoint or incomplete")
    shape = shapes[key]
    if len(shape) != ndim:
        raise CheckpointError(f"key {key!r} has shape {shape}, expected {ndim} dimensions")
    return shape


def _voted(
    shapes: Mapping[str, tuple[int, ...]],
    first: str,
    ndim: int,
    axis: int,
    votes: tuple[tuple[str, int, int], ...],
) -> int:
    """A dimension read from every key that carries it, by majority.

    One damaged (e.g. transposed) key then cannot change the architecture derived from the
    file, so the consistency check names that key and not the keys that are right.

    Args:
        shapes: Official key -> shape.
        first: The key that must exist (layer 0); gives the value on a tie.
        ndim: Its number of dimensions.
        axis: The axis of ``first`` holding the dimension.
        votes: ``(regex over keys, ndim, axis)`` of every other key carrying it.
    """
    value = _shape(shapes, first, ndim)[axis]
    counts: dict[int, int] = {value: 1}
    for pattern, nd, ax in votes:
        rx = re.compile(pattern)
        for key, shape in shapes.items():
            if key != first and len(shape) == nd and rx.fullmatch(key):
                counts[shape[ax]] = counts.get(shape[ax], 0) + 1
    best = max(counts.values())
    return value if counts[value] == best else max(counts, key=lambda v: counts[v])


def _attention_votes(root: str) -> tuple[tuple[str, int, int], ...]:
    kernels = rf"{root}_\d+/attention/(query|key|value)/kernel"
    return ((kernels, 3, 1), (rf"{root}_\d+/attention/(query|key|value)/bias", 2, 0))


def _mlp_votes(root: str) -> tuple[tuple[str, int, int], ...]:
    return (
        (rf"{root}_\d+/mlp/dense_in/kernel", 2, 1),
        (rf"{root}_\d+/mlp/dense_in/bias", 1, 0),
        (rf"{root}_\d+/mlp/dense_out/kernel", 2, 0),
    )


def has_decoder(shapes: Mapping[str, tuple[int, ...]]) -> bool:
    """Whether official shapes include the decoder (any decoder-side key)."""
    return any(key.startswith(_DECODER_ROOTS) for key in shapes)


def config_from_official_shapes(shapes: Mapping[str, tuple[int, ...]]) -> RVMConfig:
    """Derive the architecture from official key shapes and check every key against it.

    Args:
        shapes: Official key -> array shape.

    Returns:
        The configuration (``variant`` recognised from the sizes, or ``custom``).

    Raises:
        CheckpointError: Naming missing / unexpected keys and shape mismatches.
    """
    d = _shape(shapes, "cls_token", 2)[1]
    patch = _shape(shapes, "tokenizer/patch_embedding/Conv_0/kernel", 5)
    p = patch[1]
    enc_layers = _layer_count(shapes, "encoder/layers_", "encoder layers")
    enc_heads = _voted(
        shapes, "encoder/layers_0/attention/query/kernel", 3, 1, _attention_votes("encoder/layers")
    )
    enc_mlp = _voted(
        shapes, "encoder/layers_0/mlp/dense_in/kernel", 2, 1, _mlp_votes("encoder/layers")
    )
    core_layers = _layer_count(shapes, "rnn_core/transformer/xa_blocks_", "core blocks")
    core_root = "rnn_core/transformer/xa_blocks"
    core_heads = _voted(
        shapes, f"{core_root}_0/attention/query/kernel", 3, 1, _attention_votes(core_root)
    )
    core_mlp = _voted(shapes, f"{core_root}_0/mlp/dense_in/kernel", 2, 1, _mlp_votes(core_root))
    with_decoder = has_decoder(shapes)
    if with_decoder:
        dd = _shape(shapes, "mask_token", 2)[1]
        dec_layers = _layer_count(shapes, "decoder/xa_blocks_", "decoder blocks")
        dec_root = "decoder/xa_blocks"
        dec_heads = _voted(
            shapes, f"{dec_root}_0/attention/query/kernel", 3, 1, _attention_votes(dec_root)
        )
        dec_mlp = _voted(shapes, f"{dec_root}_0/mlp/dense_in/kernel", 2, 1, _mlp_votes(dec_root))
    else:
        ref = RVMConfig.from_variant("L")
        dd, dec_layers, dec_heads, dec_mlp = ref.dec_dim, ref.dec_layers, ref.dec_heads, ref.dec_mlp
    try:
        config = RVMConfig(
            dim=d,
            enc_layers=enc_layers,
            enc_heads=enc_heads,
            enc_mlp=enc_mlp,
            core_layers=core_layers,
            core_heads=core_heads,
            core_mlp=core_mlp,
            dec_dim=dd,
            dec_layers=dec_layers,
            dec_heads=dec_heads,
            dec_mlp=dec_mlp,
            patch_size=p,
        )
    except ValueError as exc:
        raise CheckpointError(f"inconsistent RVM shapes: {exc}") from None
    config = RVMConfig.from_dict({**config.to_dict(), "variant": variant_of(config)})
    check_official_shapes(shapes, config, with_decoder)
    return config


def check_official_shapes(
    shapes: Mapping[str, tuple[int, ...]], config: RVMConfig, with_decoder: bool
) -> None:
    """Raise :class:`CheckpointError` unless ``shapes`` is exactly the layout of ``config``."""
    expected = {e.official: e.shape for e in official_layout(config, with_decoder)}
    problems = key_differences(
        expected,
        {k: tuple(v) for k, v in shapes.items()},
        describe=lambda k, got, want: f"{k} {got} (expected {want}{_permuted_hint(got, want)})",
    )
    if problems:
        raise CheckpointError(
            f"checkpoint does not form a consistent RVM ({config.variant}, D={config.dim}): "
            + "; ".join(problems)
        )


def _permuted_hint(shape: tuple[int, ...], expected: tuple[int, ...]) -> str:
    shape = tuple(shape)
    if shape == expected or sorted(shape) != sorted(expected):
        return ""
    return "; transposed?" if len(shape) == 2 else "; axes swapped?"


def _expected_torch_shapes(config: RVMConfig, with_decoder: bool) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = RVM(config, with_decoder=with_decoder)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_state_dict(
    shapes: Mapping[str, torch.Tensor] | Mapping[str, tuple[int, ...]],
    config: RVMConfig,
    with_decoder: bool,
    where: str,
) -> None:
    """Raise unless ``shapes`` (tensors or shapes, torch names) fill ``config`` exactly.

    Raises:
        CheckpointError: Missing, unexpected or mis-shaped tensors, naming them (``where``
            starts the message).
    """
    expected = _expected_torch_shapes(config, with_decoder)
    got = {k: tuple(v) if isinstance(v, tuple) else tuple(v.shape) for k, v in shapes.items()}
    problems = key_differences(
        expected, got, missing="parameter(s) not filled:", unexpected="unexpected tensor(s):"
    )
    if problems:
        raise CheckpointError(f"{where}: " + "; ".join(problems))


def state_to_official(model: RVM) -> dict[str, np.ndarray]:
    """The model's weights in the official (Flax) key layout, float32 numpy."""
    state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    return torch_to_official(state, model.config, model.decoder is not None)


_DECODER_ROOTS = ("decoder/", "mask_token", "decoder_embedder/", "delta_embedder/", "detokenizer/")
