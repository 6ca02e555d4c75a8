"""What the training and distillation configurations share: YAML + ``key=value`` loading
into frozen dataclasses with sections, value coercion, and the run-level checks.

A configuration is a frozen dataclass of run-level fields and section dataclasses
(``model``, ``data``, ``loss``, ``optim``). A YAML file gives any subset of the fields;
``section.field=value`` overrides win over the file; unknown keys are errors naming the key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, get_type_hints

from rvm_ros.errors import RvmRosError

__all__ = [
    "Need",
    "SectionedConfig",
    "TrainConfigError",
    "build_section",
    "coerce",
    "load_sectioned",
    "need_raiser",
    "parse_override",
    "plain",
    "read_yaml",
    "validate_optim",
    "validate_run_fields",
]


class TrainConfigError(RvmRosError, ValueError):
    """An invalid training configuration (the message names the key)."""

    cause = "train_config"
    exit_code = 2


#: ``need(ok, key, message)``: raise :class:`TrainConfigError` ``"key: message"`` unless ok.
Need = Callable[[bool, str, str], None]

T = TypeVar("T")
# YAML / command-line values: scalars, lists and mappings of them (what safe_load gives).
Value = object


@dataclass(frozen=True)
class SectionedConfig:
    """Base of a run configuration: its plain-dict and YAML forms."""

    def to_dict(self) -> dict[str, object]:
        """Plain nested dict (tuples as lists), the form written to YAML."""
        out = plain(dataclasses.asdict(self))
        assert isinstance(out, dict)
        return out

    def to_yaml(self) -> str:
        """The configuration as YAML text (round-trips through its loader)."""
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False))


def plain(value: Value) -> Value:
    """``value`` with tuples turned into lists, recursively (YAML's and JSON's form)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def _to_bool(value: Value, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise TrainConfigError(f"{key}: expected true/false, got {value!r}")


def _to_int(value: Value, key: str) -> int:
    if isinstance(value, bool):
        raise TrainConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value)) if float(value).is_integer() else int(value)
        except ValueError:
            pass
    raise TrainConfigError(f"{key}: expected an integer, got {value!r}")


def _to_float(value: Value, key: str) -> float:
    if isinstance(value, bool):
        raise TrainConfigError(f"{key}: expected a number, got {value!r}")
    if not isinstance(value, (str, int, float)):
        raise TrainConfigError(f"{key}: expected a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise TrainConfigError(f"{key}: expected a number, got {value!r}") from None


def _to_str(value: Value, _key: str) -> str:
    return "" if value is None else str(value)


def _to_strings(value: Value, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split(",") if v) if value else ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    raise TrainConfigError(f"{key}: expected a list of strings, got {value!r}")


_COERCE: dict[object, Callable[[Value, str], Value]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
    tuple[str, ...]: _to_strings,
}


def coerce(value: Value, typ: object, key: str) -> Value:
    """Convert a YAML / command-line value to a field's type (``bool``, ``int``, ``float``,
    ``str`` or ``tuple[str, ...]``).

    Raises:
        TrainConfigError: The value does not convert (the message names ``key``).
    """
    convert = _COERCE.get(typ)
    if convert is None:  # pragma: no cover - every field type is in the table
        raise TrainConfigError(f"{key}: unsupported field type {typ!r}")
    return convert(value, key)


def parse_override(text: str) -> tuple[list[str], Value]:
    """``"section.field=value"`` as ``(["section", "field"], YAML value)``.

    Raises:
        TrainConfigError: No ``=`` or an empty key.
    """
    import yaml

    if "=" not in text:
        raise TrainConfigError(f"override {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise TrainConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Value]:
    """A YAML file's top-level mapping (sections copied into plain dicts).

    Raises:
        TrainConfigError: Missing file, invalid YAML, or no mapping at the top.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise TrainConfigError(f"config file {p} not found")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{p}: invalid YAML ({exc})") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise TrainConfigError(f"{p}: top level must be a mapping")
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in loaded.items()}


@dataclass(frozen=True)
class _Layout:
    """The sections of a configuration class and defaults a section's mapping gets."""

    sections: Mapping[str, type]
    section_defaults: Mapping[str, Mapping[str, Value]]


def build(cls: type[T], data: Mapping[str, Value], prefix: str, layout: _Layout) -> T:
    """``cls`` from a mapping (sections built recursively at the top level).

    Raises:
        TrainConfigError: An unknown key, a section that is no mapping, or a wrong type.
    """
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise TrainConfigError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)}; known: "
            f"{', '.join(sorted(prefix + n for n in names))}"
        )
    kwargs: dict[str, Value] = {}
    for name, value in data.items():
        key = prefix + name
        if name in layout.sections and prefix == "":
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise TrainConfigError(f"{key}: expected a mapping, got {value!r}")
            section = dict(value)
            for field_name, default in layout.section_defaults.get(name, {}).items():
                section.setdefault(field_name, default)
            kwargs[name] = build(layout.sections[name], section, f"{name}.", layout)
        else:
            kwargs[name] = coerce(value, hints[name], key)
    return cls(**kwargs)


def build_section(cls: type[T], data: Mapping[str, Value], prefix: str) -> T:
    """One section dataclass from a mapping (``prefix``: its keys' prefix in messages)."""
    return build(cls, data, prefix, _Layout({}, {}))


def _apply_overrides(
    data: dict[str, Value], overrides: Sequence[str], sections: Mapping[str, type]
) -> None:
    for text in overrides:
        keys, value = parse_override(text)
        if len(keys) == 1:
            if keys[0] in sections:
                raise TrainConfigError(f"override {text!r}: give section.field=value")
            data[keys[0]] = value
        elif len(keys) == 2 and keys[0] in sections:
            section = data.setdefault(keys[0], {})
            if not isinstance(section, dict):
                raise TrainConfigError(f"{keys[0]}: expected a mapping")
            section[keys[1]] = value
        else:
            raise TrainConfigError(
                f"override {text!r}: unknown key {'.'.join(keys)} (sections: {', '.join(sections)})"
            )


def load_sectioned(
    cls: type[T],
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str],
    sections: Mapping[str, type],
    section_defaults: Mapping[str, Mapping[str, Value]] | None = None,
) -> T:
    """A configuration from a YAML file and ``key=value`` overrides, validated by ``cls``.

    Args:
        cls: The configuration dataclass.
        path: YAML file (None: defaults only).
        overrides: ``field=value`` or ``section.field=value`` strings (YAML values; lists as
            ``[a, b]`` or ``a,b``), applied in order after the file.
        sections: ``{name: section dataclass}`` of ``cls``.
        section_defaults: Values a section given in the file or overrides starts from.

    Raises:
        TrainConfigError: Unreadable file, unknown key, wrong type or invalid value.
    """
    data: dict[str, Value] = read_yaml(path) if path is not None else {}
    _apply_overrides(data, overrides, sections)
    return build(cls, data, "", _Layout(sections, section_defaults or {}))


class _RunFields(Protocol):
    """The run-level fields both configurations have."""

    @property
    def steps(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def grad_accum(self) -> int: ...
    @property
    def precision(self) -> str: ...
    @property
    def checkpoint_every(self) -> int: ...
    @property
    def log_every(self) -> int: ...
    @property
    def threads(self) -> int: ...


class _OptimFields(Protocol):
    """The optimiser fields checked by :func:`validate_optim`."""

    @property
    def lr(self) -> float: ...
    @property
    def min_lr_ratio(self) -> float: ...
    @property
    def warmup_steps(self) -> int: ...
    @property
    def grad_clip(self) -> float: ...


def validate_run_fields(cfg: _RunFields, need: Need) -> None:
    """Steps, batch, accumulation, precision, checkpoint / log intervals and threads."""
    need(cfg.steps >= 1, "steps", f"must be >= 1, got {cfg.steps}")
    need(cfg.batch_size >= 1, "batch_size", f"must be >= 1, got {cfg.batch_size}")
    need(cfg.grad_accum >= 1, "grad_accum", f"must be >= 1, got {cfg.grad_accum}")
    need(cfg.precision in ("bf16", "fp32"), "precision", f"bf16 or fp32, got {cfg.precision!r}")
    need(cfg.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
    need(cfg.log_every >= 1, "log_every", "must be >= 1")
    need(cfg.threads >= 0, "threads", "must be >= 0")


def validate_optim(o: _OptimFields, need: Need) -> None:
    """The learning rate, its schedule and the gradient clip."""
    need(o.lr > 0, "optim.lr", "must be > 0")
    need(0 <= o.min_lr_ratio <= 1, "optim.min_lr_ratio", "must be in [0, 1]")
    need(o.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
    need(o.grad_clip >= 0, "optim.grad_clip", "must be >= 0")


def need_raiser(ok: bool, key: str, msg: str) -> None:
    """The :data:`Need` of both configurations: ``TrainConfigError("key: msg")``."""
    if not ok:
        raise TrainConfigError(f"{key}: {msg}")
