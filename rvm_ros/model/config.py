"""Architecture configuration of an RVM model (frozen, JSON-serialisable)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from rvm_ros.errors import check_size

# Encoder sizes of the official ViT variants: (dim, layers, mlp, heads).
_ENCODER_SIZES: dict[str, tuple[int, int, int, int]] = {
    "mu": (32, 1, 128, 2),
    "Ti": (192, 12, 768, 3),
    "S": (384, 12, 1536, 6),
    "M": (512, 12, 2048, 8),
    "B": (768, 12, 3072, 12),
    "L": (1024, 24, 4096, 16),
    "H": (1280, 32, 5120, 16),
}

# Distillation students (docs/TRAINING.md, "Distillation"): (dim, enc layers, core layers,
# heads); MLP 4x, decoder 128 wide x 2 blocks x 4 heads (the shipped default model's).
# student192 keeps the shipped model's width (a drop-in student of it, 0.43x its step);
# student128 is narrower (its features reach a 192-wide teacher through a linear adapter).
_STUDENT_SIZES: dict[str, tuple[int, int, int, int]] = {
    "student192": (192, 2, 1, 3),
    "student128": (128, 4, 1, 4),
}

VARIANTS: tuple[str, ...] = (*_ENCODER_SIZES, "tiny", *_STUDENT_SIZES)
# Largest value of each size field (H, the largest release, is far inside): a checkpoint's
# metadata may not ask for more (every field sizes an allocation; pos_grid is bound to no
# tensor, so only this bound keeps it honest).
_MOST: dict[str, int] = {
    "dim": 8192,
    "enc_layers": 256,
    "enc_heads": 256,
    "enc_mlp": 65536,
    "core_layers": 256,
    "core_heads": 256,
    "core_mlp": 65536,
    "dec_dim": 8192,
    "dec_layers": 256,
    "dec_heads": 256,
    "dec_mlp": 65536,
    "patch_size": 64,
    "pos_grid": 256,  # 4096-pixel inputs at patch 16
}
#: Patch side of every released size (a checkpoint's own config may say otherwise).
DEFAULT_PATCH_SIZE = 16


@dataclass(frozen=True)
class RVMConfig:
    """Sizes of every part of an RVM model.

    Attributes:
        dim: Token width D of the encoder and the recurrent core.
        enc_layers: Number of ViT encoder blocks.
        enc_heads: Attention heads of the encoder.
        enc_mlp: Hidden width of the encoder MLPs.
        core_layers: Number of cross-attention blocks of the recurrent core.
        core_heads: Attention heads of the recurrent core.
        core_mlp: Hidden width of the core MLPs.
        dec_dim: Width Dd of the masked-reconstruction decoder.
        dec_layers: Number of decoder blocks.
        dec_heads: Attention heads of the decoder.
        dec_mlp: Hidden width of the decoder MLPs.
        patch_size: Side of the square patches in pixels.
        pos_grid: Side of the grid the sinusoid position table is built for.
        variant: Name of the size (``S``, ``L``, ``tiny``, ... or ``custom``).
        center_grid: Token grid ``(h, w)`` of the model's feature centre (the per-cell mean
            state subtracted from the published features, :mod:`rvm_ros.model.center`);
            None (official checkpoints): the features are the state.
    """

    dim: int
    enc_layers: int
    enc_heads: int
    enc_mlp: int
    core_layers: int
    core_heads: int
    core_mlp: int
    dec_dim: int
    dec_layers: int
    dec_heads: int
    dec_mlp: int
    patch_size: int = DEFAULT_PATCH_SIZE
    pos_grid: int = 16
    variant: str = "custom"
    center_grid: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if field.name == "variant":
                if not isinstance(self.variant, str) or not self.variant:
                    raise ValueError(
                        f"RVMConfig.variant must be a non-empty string, got {self.variant!r}"
                    )
                continue
            if field.name == "center_grid":
                self._check_center_grid()
                continue
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"RVMConfig.{field.name} must be a positive integer, got {str(value)[:40]}"
                )
            check_size(f"RVMConfig.{field.name}", value, most=_MOST[field.name])
        self._check_memory()
        for part, width, heads in (
            ("enc", self.dim, self.enc_heads),
            ("core", self.dim, self.core_heads),
            ("dec", self.dec_dim, self.dec_heads),
        ):
            if width % heads:
                raise ValueError(
                    f"RVMConfig: {part} width {width} is not divisible by {part}_heads {heads}"
                )

    def _check_center_grid(self) -> None:
        """``center_grid``: None or two positive ints (a JSON list becomes a tuple)."""
        grid = self.center_grid
        if grid is None:
            return
        if (
            not isinstance(grid, (tuple, list))
            or len(grid) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in grid)
        ):
            raise ValueError(
                f"RVMConfig.center_grid must be None or two positive integers, got {str(grid)[:40]}"
            )
        for v in grid:
            check_size("RVMConfig.center_grid", v, most=_MOST["pos_grid"])
        object.__setattr__(self, "center_grid", (int(grid[0]), int(grid[1])))

    def _check_memory(self) -> None:
        """Refuse sizes whose weights or position table would not fit (`TooLarge`)."""
        d, dd = self.dim, self.dec_dim
        params = (
            self.enc_layers * (4 * d * d + 2 * d * self.enc_mlp)
            + self.core_layers * (8 * d * d + 2 * d * self.core_mlp)
            + self.dec_layers * (4 * dd * dd + 2 * dd * self.dec_mlp)
            + 3 * self.patch_size**2 * (d + dd)
        )
        check_size("RVMConfig weights (parameters)", params, bytes_each=4, hint="not an RVM size")
        # The sinusoid position table: pos_grid**2 positions x dim, float64, plus a copy.
        check_size(
            "RVMConfig.pos_grid table (positions)",
            self.pos_grid**2,
            bytes_each=16 * d,
            hint="pos_grid is the side of the position grid (16 for 256-pixel training)",
        )

    @classmethod
    def from_variant(cls, name: str) -> RVMConfig:
        """Configuration of a named size.

        Args:
            name: One of ``mu, Ti, S, M, B, L, H`` (official ViT sizes; core and decoder
                follow the published RVM-L construction: 4 core blocks with MLP 4D,
                decoder width 512, 8 blocks, 16 heads, MLP 2048) or ``tiny`` (the test
                fixture configuration: D 64, 2 encoder + 2 core blocks) or a
                distillation student (``student192``, ``student128``).

        Returns:
            The configuration.

        Raises:
            ValueError: For an unknown name.
        """
        if name == "tiny":
            return cls(
                dim=64,
                enc_layers=2,
                enc_heads=4,
                enc_mlp=256,
                core_layers=2,
                core_heads=4,
                core_mlp=256,
                dec_dim=32,
                dec_layers=2,
                dec_heads=4,
                dec_mlp=128,
                variant="tiny",
            )
        if name in _STUDENT_SIZES:
            dim, enc, core, heads = _STUDENT_SIZES[name]
            return cls(
                dim=dim,
                enc_layers=enc,
                enc_heads=heads,
                enc_mlp=4 * dim,
                core_layers=core,
                core_heads=heads,
                core_mlp=4 * dim,
                dec_dim=128,
                dec_layers=2,
                dec_heads=4,
                dec_mlp=512,
                variant=name,
            )
        if name not in _ENCODER_SIZES:
            raise ValueError(f"unknown RVM variant {name!r}; known: {', '.join(VARIANTS)}")
        dim, layers, mlp, heads = _ENCODER_SIZES[name]
        return cls(
            dim=dim,
            enc_layers=layers,
            enc_heads=heads,
            enc_mlp=mlp,
            core_layers=4,
            core_heads=heads,
            core_mlp=4 * dim,
            dec_dim=512,
            dec_layers=8,
            dec_heads=16,
            dec_mlp=2048,
            variant=name,
        )

    def to_dict(self) -> dict[str, object]:
        """The fields as a plain dict (``center_grid`` only when the model has a centre, so
        configurations without one read as before)."""
        out = dataclasses.asdict(self)
        if self.center_grid is None:
            del out["center_grid"]
        else:
            out["center_grid"] = list(self.center_grid)
        return out

    def to_json(self) -> str:
        """The configuration as compact JSON (the ``rvm_config`` checkpoint metadata)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RVMConfig:  # Any: JSON values, typed by the fields
        """Build from a dict; unknown or missing fields raise ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"RVMConfig: unknown field(s) {', '.join(unknown)}")
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"RVMConfig: missing field(s) {', '.join(missing)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> RVMConfig:
        """Parse :meth:`to_json` output."""
        if len(text) > 65536:
            raise ValueError(f"RVMConfig: JSON of {len(text)} characters is no configuration")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"RVMConfig: invalid JSON ({exc})") from exc
        except RecursionError:
            raise ValueError("RVMConfig: JSON nested too deeply") from None
        if not isinstance(data, dict):
            raise ValueError("RVMConfig: JSON must be an object")
        return cls.from_dict(data)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Token grid (h, w) of an input size; raises ``ValueError`` if not divisible."""
        p = self.patch_size
        if height <= 0 or width <= 0 or height % p or width % p:
            raise ValueError(
                f"input size {height}x{width} must be positive and divisible by the patch size {p}"
            )
        return height // p, width // p

    def num_tokens(self, height: int, width: int) -> int:
        """Tokens per frame: 1 (CLS) + h*w."""
        h, w = self.grid(height, width)
        return 1 + h * w
