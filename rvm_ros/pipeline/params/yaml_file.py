"""ROS 2 parameter files (YAML) read for one node, flattened to dotted parameter names."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

import yaml

from rvm_ros.pipeline.config import ConfigError

__all__ = ["load_params_file"]


def _flatten(prefix: str, value: object, out: dict[str, object]) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value


def _matches_node(key: str, node_name: str) -> bool:
    """Whether a params-file top-level key applies to ``node_name`` (namespace ignored)."""
    key = key.strip()
    if key in ("/**", "**"):
        return True
    return key.rstrip("/").split("/")[-1] == node_name


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML would silently keep the last one)."""


def _construct_unique_mapping(
    loader: yaml.SafeLoader, node: yaml.MappingNode
) -> dict[Hashable, object]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def load_params_file(path: str | Path, node_name: str = "rvm") -> dict[str, object]:
    """Read a ROS 2 parameters YAML file for one node, flattened to dotted names.

    The file holds ``<node>: {ros__parameters: {...}}`` sections; ``/**`` (any node) and
    keys ending in ``/<node_name>`` (any namespace) apply. Wildcard sections are applied
    first, so a section naming the node wins. Nested mappings become dotted names
    (``camera: {front: {topic: x}}`` -> ``camera.front.topic``); per-camera parameters are
    best written as dotted keys (``cameras.front.topic: x``) because a nested ``cameras:``
    mapping would collide with the ``cameras`` list (duplicate keys are refused).

    Args:
        path: The YAML file.
        node_name: The node's name (``rvm`` by default).

    Returns:
        Parameter name -> value.

    Raises:
        ConfigError: Unreadable file, malformed YAML or no section for the node; ``param``
            is ``params_file`` and the message names the file.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError("params_file", f"cannot read {p}: {exc.strerror or exc}") from exc
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError("params_file", f"{p} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError("params_file", f"{p}: expected a mapping of node names at the top")
    wild = [k for k in doc if str(k).strip() in ("/**", "**")]
    named = [k for k in doc if k not in wild and _matches_node(str(k), node_name)]
    if not wild and not named:
        raise ConfigError(
            "params_file",
            f"{p} has no section for node {node_name!r} (found: {', '.join(map(str, doc))})",
        )
    out: dict[str, object] = {}
    for key in wild + named:
        section = doc[key]
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ConfigError("params_file", f"{p}: section {key!r} has no 'ros__parameters'")
        body = section["ros__parameters"]
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError("params_file", f"{p}: {key}.ros__parameters is not a mapping")
        _flatten("", body, out)
    return out
