"""Node parameters: one declaration table, one conversion to a frozen, validated config.

Everything here is pure Python (no rclpy), so off-robot tools (bag replay) read the same
ROS 2 parameter files and get exactly the configuration the node would run with:

>>> params = load_params_file("config/rvm.yaml")  # {"cameras": ["front"], ...}
>>> cfg = config_from_params(params)              # NodeConfig, or raises ConfigError

The node declares every entry of :data:`PARAMS` (plus the per-camera
``cameras.<name>.topic`` / ``cameras.<name>.transport``) and calls
:func:`config_from_params` on the declared values in ``on_configure``.

This module is the public face (import from here) and renders the parameter reference
(:func:`parameters_markdown`); the parts live in :mod:`.param_table` (``ParamSpec``,
``PARAMS``), :mod:`.node_config` (``NodeConfig``, ``config_from_params``) and
:mod:`.params_file` (``load_params_file``).
"""

from __future__ import annotations

from typing import Any

from rvm_ros.pipeline.config import ConfigError
from rvm_ros.pipeline.node_config import (
    CAMERA_NAME,
    NodeConfig,
    check_parameter,
    checkpoint_patch_size,
    config_from_params,
)
from rvm_ros.pipeline.param_table import (
    CAMERA_PARAM_SUFFIXES,
    PARAMS,
    TRANSPORTS,
    ParamSpec,
    camera_param_defaults,
    unknown_parameters,
)
from rvm_ros.pipeline.params_file import load_params_file

__all__ = [
    "CAMERA_NAME",
    "CAMERA_PARAM_SUFFIXES",
    "PARAMS",
    "TRANSPORTS",
    "ConfigError",
    "NodeConfig",
    "ParamSpec",
    "camera_param_defaults",
    "check_parameter",
    "checkpoint_patch_size",
    "config_from_params",
    "load_params_file",
    "parameters_markdown",
    "unknown_parameters",
]


def parameters_markdown() -> str:
    """The parameter reference as a markdown table (docs/NODE.md embeds it verbatim).

    Returns:
        One row per entry of :data:`PARAMS` plus the per-camera parameters.
    """

    def show(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(map(str, value)) + "]"
        return '""' if value == "" else str(value)

    rows = ["| parameter | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for spec in PARAMS:
        rows.append(
            f"| `{spec.name}` | {spec.kind} | `{show(spec.default)}` | "
            f"{spec.constraint_text().replace(' | ', ', ') or 'any'} | {spec.description} |"
        )
    rows.append(
        "| `cameras.<name>.topic` | str | `/<name>/image_raw` (`.../compressed` for "
        "compressed) | a ROS topic name | Input image topic of camera `<name>` |"
    )
    rows.append(
        "| `cameras.<name>.transport` | str | `raw` | one of "
        f"{', '.join(TRANSPORTS)} | `sensor_msgs/Image` (raw) or `CompressedImage` |"
    )
    rows.append(
        "| `cameras.<name>.camera_info_topic` | str | `/<name>/camera_info` | a ROS topic "
        "name | Scene tokens: `sensor_msgs/CameraInfo` of camera `<name>` |"
    )
    rows.append(
        "| `cameras.<name>.translation` | float list | unset | 3 numbers (m) | Scene tokens: "
        "static camera-to-base translation `[x, y, z]` of the camera frame in the base frame |"
    )
    rows.append(
        "| `cameras.<name>.rotation` | float list | unset | unit quaternion | Scene tokens: "
        "static camera-to-base rotation `[x, y, z, w]` (with `translation`) |"
    )
    return "\n".join(rows) + "\n"
