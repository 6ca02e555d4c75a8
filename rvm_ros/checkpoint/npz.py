"""Pickle-free reader of official ``.npz`` checkpoints (headers checked before arrays are read)."""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rvm_ros.checkpoint.errors import CheckpointError
from rvm_ros.checkpoint.finite import check_finite
from rvm_ros.checkpoint.official import (
    check_state_dict,
    config_from_official_shapes,
    has_decoder,
    official_to_torch,
)
from rvm_ros.checkpoint.progress import ByteBar, byte_bar
from rvm_ros.fsutil import not_a_file
from rvm_ros.model import RVMConfig


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
    if (why := not_a_file(path)) is not None:
        raise CheckpointError(f"{path}: {why}")
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, np.dtype] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if not infos:
                raise CheckpointError(f"{path}: empty archive, not an RVM checkpoint")
            for info in infos:
                key, shape, dtype, nbytes = _member_header(zf, info, path)
                shapes[key], dtypes[key] = shape, dtype
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


def _member_header(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path
) -> tuple[str, tuple[int, ...], np.dtype, int]:
    """``(key, shape, dtype, data bytes)`` of one ``.npy`` member, checked against its size."""
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
            raise CheckpointError(f"{path}: member {name!r} has unsupported .npy version {version}")
        offset = f.tell()
    if dtype.hasobject or dtype.kind != "f":
        raise CheckpointError(f"{path}: key {key!r} has dtype {dtype}, expected floating point")
    nbytes = int(math.prod(shape)) * dtype.itemsize
    if info.file_size != offset + nbytes:
        raise CheckpointError(
            f"{path}: key {key!r} holds {info.file_size - offset} bytes of data, "
            f"its header {tuple(shape)} {dtype} needs {nbytes} (truncated or corrupt)"
        )
    return key, tuple(int(s) for s in shape), dtype, nbytes


PROGRESS_MIN_BYTES = 64 * 1024 * 1024


class _ArchiveArrays(Mapping[str, np.ndarray]):
    """An open ``np.load`` archive as a lazy key -> array mapping that advances a bar."""

    def __init__(self, npz: Mapping[str, np.ndarray], bar: ByteBar | None) -> None:
        self._npz, self._bar = npz, bar

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            array = self._npz[key]
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise CheckpointError(f"read failed ({exc}); truncated or corrupt") from None
        if self._bar is not None:
            self._bar.update(array.nbytes)
        return array

    def __iter__(self) -> Iterator[str]:
        return iter(self._npz)

    def __len__(self) -> int:
        return len(self._npz)


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
    with_decoder = has_decoder(header.shapes)
    show = header.nbytes >= PROGRESS_MIN_BYTES if progress is None else progress
    with byte_bar(show, header.nbytes, f"reading {path.name}") as bar:
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = official_to_torch(_ArchiveArrays(npz, bar), config, with_decoder)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise CheckpointError(f"{path}: read failed ({exc}); truncated or corrupt") from None
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}", cause=exc.cause) from None
    state = {name: torch.from_numpy(array) for name, array in arrays.items()}
    check_state_dict(state, config, with_decoder, str(path))
    check_finite(state, str(path))
    return config, state, with_decoder
