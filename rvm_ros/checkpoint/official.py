"""Checkpoints: official ``.npz`` and project ``.safetensors``; validation, conversion, loading.

Official files are flat ``.npz`` archives keyed by Flax parameter path. They are read
without pickle: the zip headers and every member's ``.npy`` header are parsed first, the
architecture is derived from the shapes and checked for consistency, and only then are
arrays read. Project files are safetensors with the :class:`RVMConfig` JSON stored under
metadata key ``rvm_config`` (and ``source_sha256``, the sha256 of the file converted).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rvm_ros.model import RVM, RVMConfig
from rvm_ros.model.config import VARIANTS

CONFIG_KEY = "rvm_config"
SOURCE_SHA_KEY = "source_sha256"
FORMAT_KEY = "format"
FORMAT_VALUE = "rvm_ros"
PROGRESS_MIN_BYTES = 64 * 1024 * 1024
_MAX_LISTED = 8


class CheckpointError(ValueError):
    """A checkpoint is unreadable, not an RVM checkpoint, or inconsistent."""


# --------------------------------------------------------------------------- helpers


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


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


# ------------------------------------------------------------- official key layout

# Transform kinds from an official (Flax) array to the torch parameter.
#   vec: as is; dense: (in, out) -> (out, in); qkv: (D, h, hd) -> (h*hd, D);
#   qkv_bias: (h, hd) -> (h*hd,); out: (h, hd, D) -> (D, h*hd); patch: (1, p, p, 3, D) -> (D, p*p*3)


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
    if kind == "vec":
        return array
    if kind == "dense":
        return array.T
    if kind == "qkv":
        return array.reshape(array.shape[0], -1).T
    if kind == "qkv_bias":
        return array.reshape(-1)
    if kind == "out":
        return array.reshape(-1, array.shape[-1]).T
    if kind == "patch":
        return array.reshape(-1, array.shape[-1]).T
    raise AssertionError(kind)


def _from_torch_layout(kind: str, tensor: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if kind in ("vec", "qkv_bias"):
        return tensor.reshape(shape)
    if kind == "dense":
        return tensor.T
    if kind == "qkv":
        return tensor.T.reshape(shape)
    if kind in ("out", "patch"):
        return tensor.T.reshape(shape)
    raise AssertionError(kind)


_DECODER_ROOTS = ("decoder/", "mask_token", "decoder_embedder/", "delta_embedder/", "detokenizer/")


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


def _has_decoder(shapes: Mapping[str, tuple[int, ...]]) -> bool:
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
    enc_q = _shape(shapes, "encoder/layers_0/attention/query/kernel", 3)
    enc_mlp = _shape(shapes, "encoder/layers_0/mlp/dense_in/kernel", 2)[1]
    core_layers = _layer_count(shapes, "rnn_core/transformer/xa_blocks_", "core blocks")
    core_q = _shape(shapes, "rnn_core/transformer/xa_blocks_0/attention/query/kernel", 3)
    core_mlp = _shape(shapes, "rnn_core/transformer/xa_blocks_0/mlp/dense_in/kernel", 2)[1]
    with_decoder = _has_decoder(shapes)
    if with_decoder:
        dd = _shape(shapes, "mask_token", 2)[1]
        dec_layers = _layer_count(shapes, "decoder/xa_blocks_", "decoder blocks")
        dec_heads = _shape(shapes, "decoder/xa_blocks_0/attention/query/kernel", 3)[1]
        dec_mlp = _shape(shapes, "decoder/xa_blocks_0/mlp/dense_in/kernel", 2)[1]
    else:
        ref = RVMConfig.from_variant("L")
        dd, dec_layers, dec_heads, dec_mlp = ref.dec_dim, ref.dec_layers, ref.dec_heads, ref.dec_mlp
    try:
        config = RVMConfig(
            dim=d,
            enc_layers=enc_layers,
            enc_heads=enc_q[1],
            enc_mlp=enc_mlp,
            core_layers=core_layers,
            core_heads=core_q[1],
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
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(shapes[k])} (expected {expected[k]})"
        for k in set(expected) & set(shapes)
        if tuple(shapes[k]) != expected[k]
    )
    problems = []
    if missing:
        problems.append(f"missing key(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected key(s): {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {_listing(mismatched)}")
    if problems:
        raise CheckpointError(
            f"checkpoint does not form a consistent RVM ({config.variant}, D={config.dim}): "
            + "; ".join(problems)
        )


# ------------------------------------------------------------------ official .npz


@dataclass(frozen=True)
class NpzHeader:
    """What the zip and ``.npy`` headers of an official checkpoint say.

    Attributes:
        shapes: Key -> shape.
        dtypes: Key -> numpy dtype.
        nbytes: Total array bytes.
    """

    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, np.dtype]
    nbytes: int


def read_npz_header(path: str | os.PathLike[str]) -> NpzHeader:
    """Read keys, shapes and dtypes of an ``.npz`` without reading any array data.

    Raises:
        CheckpointError: Not a zip archive, truncated, a member that is not a plain
            numeric ``.npy`` array, or a member whose size disagrees with its header.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, np.dtype] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if not infos:
                raise CheckpointError(f"{path}: empty archive, not an RVM checkpoint")
            for info in infos:
                name = info.filename
                if not name.endswith(".npy"):
                    raise CheckpointError(f"{path}: member {name!r} is not a .npy array")
                key = name[: -len(".npy")]
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise CheckpointError(
                            f"{path}: member {name!r} has unsupported .npy version {version}"
                        )
                    offset = f.tell()  # type: ignore[attr-defined]
                if dtype.hasobject or dtype.kind != "f":
                    raise CheckpointError(
                        f"{path}: key {key!r} has dtype {dtype}, expected floating point"
                    )
                nbytes = int(math.prod(shape)) * dtype.itemsize
                if info.file_size != offset + nbytes:
                    raise CheckpointError(
                        f"{path}: key {key!r} holds {info.file_size - offset} bytes of data, "
                        f"its header {tuple(shape)} {dtype} needs {nbytes} (truncated or corrupt)"
                    )
                shapes[key] = tuple(int(s) for s in shape)
                dtypes[key] = dtype
                total += nbytes
    except zipfile.BadZipFile as exc:
        raise CheckpointError(
            f"{path}: not a readable .npz archive ({exc}); truncated download or not an "
            "RVM checkpoint"
        ) from None
    except ValueError as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: corrupt .npy header ({exc})") from None
    except EOFError as exc:
        raise CheckpointError(f"{path}: truncated archive ({exc})") from None
    return NpzHeader(shapes, dtypes, total)


def _progress(total: int, desc: str, enabled: bool | None) -> contextlib.AbstractContextManager:
    show = total >= PROGRESS_MIN_BYTES if enabled is None else enabled
    if not show:
        return contextlib.nullcontext(None)
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


def _iter_official_arrays(
    path: Path, entries: list[_Entry], progress: bool | None, total: int
) -> Iterator[tuple[_Entry, np.ndarray]]:
    with _progress(total, f"reading {path.name}", progress) as bar:
        try:
            with np.load(path, allow_pickle=False) as npz:
                for entry in entries:
                    array = npz[entry.official]
                    if tuple(array.shape) != entry.shape:  # headers were checked; be safe
                        raise CheckpointError(
                            f"{path}: key {entry.official!r} has shape {array.shape}, "
                            f"expected {entry.shape}"
                        )
                    if bar is not None:
                        bar.update(array.nbytes)
                    yield entry, array
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise CheckpointError(f"{path}: read failed ({exc}); truncated or corrupt") from None


def read_official(
    path: str | os.PathLike[str], progress: bool | None = None
) -> tuple[RVMConfig, dict[str, torch.Tensor], bool]:
    """Validate and read an official ``.npz`` into torch-named float32 tensors.

    Every key must be consumed and every parameter filled.

    Args:
        path: The ``.npz`` file.
        progress: Show a progress bar (None: only for files of 64 MiB or more).

    Returns:
        ``(config, state_dict, with_decoder)``.

    Raises:
        CheckpointError: For any problem, naming the key.
    """
    path = Path(path)
    header = read_npz_header(path)
    config = config_from_official_shapes(header.shapes)
    with_decoder = _has_decoder(header.shapes)
    entries = official_layout(config, with_decoder)
    state: dict[str, torch.Tensor] = {}
    consumed: set[str] = set()
    for entry, array in _iter_official_arrays(path, entries, progress, header.nbytes):
        data = _to_torch_layout(entry.kind, array.astype(np.float32, copy=False))
        state[entry.torch_name] = torch.from_numpy(np.ascontiguousarray(data))
        consumed.add(entry.official)
    unconsumed = sorted(set(header.shapes) - consumed)
    if unconsumed:
        raise CheckpointError(f"{path}: key(s) not consumed: {_listing(unconsumed)}")
    _check_state_dict(state, config, with_decoder, str(path))
    return config, state, with_decoder


def _expected_torch_shapes(config: RVMConfig, with_decoder: bool) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = RVM(config, with_decoder=with_decoder)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check_state_dict(
    shapes: Mapping[str, torch.Tensor] | Mapping[str, tuple[int, ...]],
    config: RVMConfig,
    with_decoder: bool,
    where: str,
) -> None:
    expected = _expected_torch_shapes(config, with_decoder)
    got = {k: tuple(v) if isinstance(v, tuple) else tuple(v.shape) for k, v in shapes.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted(
        f"{k} {got[k]} (expected {expected[k]})"
        for k in set(expected) & set(got)
        if got[k] != expected[k]
    )
    problems = []
    if missing:
        problems.append(f"parameter(s) not filled: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected tensor(s): {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {_listing(mismatched)}")
    if problems:
        raise CheckpointError(f"{where}: " + "; ".join(problems))


# --------------------------------------------------------------- project .safetensors


def save_safetensors(
    state: Mapping[str, torch.Tensor],
    config: RVMConfig,
    path: str | os.PathLike[str],
    source_sha256: str | None = None,
) -> Path:
    """Write a project checkpoint atomically (temporary file, then rename).

    Args:
        state: Torch-named tensors (an :class:`RVM` state dict).
        config: Architecture, stored as JSON under metadata ``rvm_config``.
        path: Output ``.safetensors`` path.
        source_sha256: sha256 of the file the weights came from (stored as metadata).

    Returns:
        The written path. No file is left behind on failure.
    """
    from safetensors.torch import save_file

    path = Path(path)
    with_decoder = any(k.startswith("decoder.") for k in state)
    _check_state_dict(state, config, with_decoder, str(path))
    metadata = {CONFIG_KEY: config.to_json(), FORMAT_KEY: FORMAT_VALUE}
    if source_sha256:
        metadata[SOURCE_SHA_KEY] = source_sha256
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    _atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def read_safetensors_config(path: str | os.PathLike[str]) -> tuple[RVMConfig, bool]:
    """Config and decoder presence of a project checkpoint, checked against its tensor shapes.

    Reads only the safetensors header; no tensor is loaded.

    Raises:
        CheckpointError: Not a project checkpoint, or shapes that do not fit its config.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if CONFIG_KEY not in metadata:
        raise CheckpointError(
            f"{path}: safetensors file without '{CONFIG_KEY}' metadata; not written by "
            "rvm_ros (convert official .npz files with `rvm-ros convert`)"
        )
    try:
        config = RVMConfig.from_json(metadata[CONFIG_KEY])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid '{CONFIG_KEY}' metadata: {exc}") from None
    with_decoder = any(k.startswith("decoder.") for k in shapes)
    _check_state_dict(shapes, config, with_decoder, str(path))
    return config, with_decoder


# ------------------------------------------------------------------------ public API


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    progress: bool | None = None,
) -> RVMConfig:
    """Convert an official ``.npz`` to a project ``.safetensors``.

    Args:
        src: Official checkpoint.
        dst: Output path; written atomically, nothing is left behind on failure.
        progress: Progress bar (None: automatic for large files).

    Returns:
        The configuration of the converted model.

    Raises:
        CheckpointError: For unreadable, non-RVM or inconsistent input.
    """
    src = Path(src)
    config, state, _ = read_official(src, progress=progress)
    sha = file_sha256(src)
    save_safetensors(state, config, dst, source_sha256=sha)
    return config


def random_model(variant: str, seed: int = 0, with_decoder: bool = True) -> RVM:
    """A model of a named size with deterministic random weights (tests, demos, benchmarks)."""
    config = RVMConfig.from_variant(variant)
    gen = torch.Generator().manual_seed(seed)
    model = RVM(config, with_decoder=with_decoder, model_id=f"{variant}-random{seed}")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=gen))
            elif name.endswith("norm.bias") or name.endswith(".bias"):
                param.copy_(0.02 * torch.randn(param.shape, generator=gen))
            else:
                fan_in = param.shape[-1] if param.dim() > 1 else 1
                std = 0.02 if param.dim() == 1 or fan_in == 1 else fan_in**-0.5
                if name.endswith(("cls_token", "mask_token")):
                    std = 0.02
                param.copy_(std * torch.randn(param.shape, generator=gen))
    return model


def _parse_random(spec: str) -> tuple[str, int]:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] != "random" or parts[1] not in VARIANTS:
        raise CheckpointError(
            f"invalid random checkpoint {spec!r}: use random:<variant>[:<seed>] with variant "
            f"one of {', '.join(VARIANTS)}"
        )
    seed = 0
    if len(parts) == 3:
        try:
            seed = int(parts[2])
        except ValueError:
            raise CheckpointError(f"invalid seed {parts[2]!r} in {spec!r}") from None
    return parts[1], seed


def read_config(path: str | os.PathLike[str]) -> RVMConfig:
    """Architecture of a checkpoint (``.npz``, ``.safetensors``, ``random:``), not loading it."""
    spec = str(path)
    if spec.startswith("random:"):
        return RVMConfig.from_variant(_parse_random(spec)[0])
    p = Path(spec)
    if p.suffix == ".npz":
        return config_from_official_shapes(read_npz_header(p).shapes)
    return read_safetensors_config(p)[0]


def load_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> RVM:
    """Load an RVM model in eval mode.

    Args:
        path: Official ``.npz``, project ``.safetensors``, or ``random:<variant>[:<seed>]``.
        device: Torch device.
        dtype: Parameter dtype (float32, bfloat16 or float16).

    Returns:
        The model; ``model.model_id`` is ``<variant>-<sha12>`` or ``<variant>-random<seed>``.

    Raises:
        CheckpointError: Unreadable or inconsistent checkpoint.
    """
    spec = str(path)
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"load_model: unsupported dtype {dtype}")
    if spec.startswith("random:"):
        variant, seed = _parse_random(spec)
        model = random_model(variant, seed)
    else:
        p = Path(spec)
        if not p.is_file():
            raise CheckpointError(f"checkpoint {p} not found")
        if p.suffix == ".npz":
            config, state, with_decoder = read_official(p)
        elif p.suffix == ".safetensors":
            from safetensors.torch import load_file

            config, with_decoder = read_safetensors_config(p)
            state = load_file(str(p))
        else:
            raise CheckpointError(
                f"{p}: unknown checkpoint type {p.suffix!r} (expected .npz or .safetensors)"
            )
        model_id = f"{config.variant}-{file_sha256(p)[:12]}"
        with torch.device("meta"):  # no wasted random init: the weights come from the file
            model = RVM(config, with_decoder=with_decoder, model_id=model_id)
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def state_to_official(model: RVM) -> dict[str, np.ndarray]:
    """The model's weights in the official (Flax) key layout, float32 numpy."""
    state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}
    for entry in official_layout(model.config, model.decoder is not None):
        out[entry.official] = np.ascontiguousarray(
            _from_torch_layout(entry.kind, state[entry.torch_name], entry.shape)
        )
    return out
