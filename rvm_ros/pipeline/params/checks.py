"""One parameter value checked on its own: type, choices and range, camera names, topics.

The node's parameter callback checks every change here (`check_parameter`); the
conversion to a `NodeConfig` (`rvm_ros.pipeline.params.convert`) checks every value with
`check_value` and adds the rules that involve several parameters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from rvm_ros.pipeline.config import CAMERA_NAME, ConfigError
from rvm_ros.pipeline.params.table import PARAMS, TRANSPORTS, ParamSpec, ParamValue

__all__ = ["TOPIC_NAME", "check_parameter", "check_topic", "check_value"]

#: A ROS 2 topic name (absolute, relative or private), substitutions excluded.
TOPIC_NAME = re.compile(r"^(~/|/)?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


def _type_name(value: object) -> str:
    return type(value).__name__


def check_value(spec: ParamSpec, value: object) -> ParamValue:
    """Check one value against its spec; returns it normalised (int -> float, list -> tuple).

    Raises:
        ConfigError: A wrong type, a value not among the choices or out of range.
    """
    name = spec.name
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(name, f"expected a bool, got {value!r} ({_type_name(value)})")
        return value
    if spec.kind == "str_list":
        return _str_list(name, value)
    out = _scalar(spec, value)
    if spec.choices and str(out) not in spec.choices:
        raise ConfigError(name, f"must be one of {' | '.join(spec.choices)}, got {value!r}")
    if isinstance(out, (int, float)):
        if spec.min_value is not None and out < spec.min_value:
            raise ConfigError(name, f"must be >= {spec.min_value:g}, got {value!r}")
        if spec.max_value is not None and out > spec.max_value:
            raise ConfigError(name, f"must be <= {spec.max_value:g}, got {value!r}")
    return out


def _scalar(spec: ParamSpec, value: object) -> int | float | str:
    """An ``int``, ``float`` or ``str`` value of the spec's kind."""
    name = spec.name
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, f"expected an integer, got {value!r} ({_type_name(value)})")
        return int(value)
    if spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(name, f"expected a number, got {value!r} ({_type_name(value)})")
        out = float(value)
        if not math.isfinite(out):
            raise ConfigError(name, f"must be finite, got {value!r}")
        return out
    if spec.kind == "str":
        if not isinstance(value, str):
            raise ConfigError(name, f"expected a string, got {value!r} ({_type_name(value)})")
        return value
    raise AssertionError(f"unknown kind {spec.kind!r} for {name}")  # pragma: no cover


def _str_list(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(name, f"expected a list of strings, got {value!r} ({_type_name(value)})")
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(name, f"expected a list of strings, got {list(value)!r}")
    return tuple(value)


def check_topic(key: str, topic: object) -> str:
    """``topic`` when it is a valid ROS topic name.

    Raises:
        ConfigError: Not a string, or not a topic name (``param`` is ``key``).
    """
    if not isinstance(topic, str) or not TOPIC_NAME.match(topic):
        raise ConfigError(key, f"not a valid ROS topic name: {topic!r}")
    return topic


def _check_camera_parameter(name: str, suffix: str, value: object) -> None:
    if suffix == "transport" and (not isinstance(value, str) or value not in TRANSPORTS):
        raise ConfigError(name, f"must be one of {' | '.join(TRANSPORTS)}, got {value!r}")
    if suffix in ("topic", "camera_info_topic"):
        check_topic(name, value)
    if suffix in ("translation", "rotation") and value is not None:
        n = 3 if suffix == "translation" else 4
        ok = (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and len(value) == n
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
        )
        if not ok:
            raise ConfigError(name, f"expected {n} finite numbers, got {value!r}")


def check_parameter(name: str, value: object) -> None:
    """Check one parameter value on its own (type, choices, range; camera names, topics).

    The node's parameter callback calls it for every change; cross-parameter rules are
    checked by :func:`~rvm_ros.pipeline.params.config_from_params` at configure time.

    Raises:
        ConfigError: The value is invalid (``param`` names it). Unknown names pass.
    """
    spec = next((p for p in PARAMS if p.name == name), None)
    if spec is not None:
        checked = check_value(spec, value)
        if name == "cameras" and isinstance(checked, tuple):
            for cam in checked:
                if not CAMERA_NAME.match(cam):
                    raise ConfigError(
                        name,
                        f"camera name {cam!r} must start with a letter and hold only "
                        "letters, digits, _",
                    )
        return
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "cameras":
        _check_camera_parameter(name, parts[2], value)
