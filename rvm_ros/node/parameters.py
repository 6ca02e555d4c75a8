"""The node's ROS parameters: declaration, descriptors and the change check.

Descriptors carry the parameter table's ranges as ``integer_range`` /
``floating_point_range``, so ``ros2 param describe`` shows them and rclpy enforces them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from rvm_ros.pipeline.config import ConfigError
from rvm_ros.pipeline.params import (
    CAMERA_NAME,
    PARAMS,
    ParamSpec,
    camera_param_defaults,
    check_parameter,
)

__all__ = [
    "RUNTIME_FREE",
    "declare_camera_parameters",
    "declare_node_parameters",
    "parameter_descriptor",
    "refuse_change",
]

#: Parameters that may change at any time (rclpy's own; not read by the node's config).
RUNTIME_FREE: frozenset[str] = frozenset({"use_sim_time"})
_INT_MAX = 2**63 - 1


def parameter_descriptor(spec: ParamSpec, given: object = None) -> ParameterDescriptor:
    """The descriptor of ``spec``: description with its constraint, and its range.

    Args:
        spec: The parameter.
        given: The value given at start (an override), if any. A value outside the range
            gets a descriptor without it, so that rclpy does not refuse the node's start:
            the configure transition reports it by name instead.
    """
    text = spec.description
    if spec.constraint_text():
        text += f" ({spec.constraint_text()})"
    desc = ParameterDescriptor(description=text, dynamic_typing=True)
    if given is not None:
        try:
            check_parameter(spec.name, list(given) if isinstance(given, tuple) else given)
        except ConfigError:
            return desc
    lo, hi = spec.min_value, spec.max_value
    if lo is None and hi is None:
        return desc
    if spec.kind == "int":
        desc.integer_range = [
            IntegerRange(
                from_value=int(lo) if lo is not None else -_INT_MAX,
                to_value=int(hi) if hi is not None else _INT_MAX,
                step=0,
            )
        ]
    elif spec.kind == "float":
        desc.floating_point_range = [
            FloatingPointRange(
                from_value=float(lo) if lo is not None else -1e308,
                to_value=float(hi) if hi is not None else 1e308,
                step=0.0,
            )
        ]
    return desc


def declare_node_parameters(node: Node, overrides: Mapping[str, object]) -> None:
    """Declare every entry of the parameter table on ``node``.

    Args:
        node: The node.
        overrides: Parameter name -> value given at start (``--ros-args -p`` / params file);
            a value out of its range gets a descriptor without the range (see
            :func:`parameter_descriptor`).
    """
    for spec in PARAMS:
        node.declare_parameter(
            spec.name, spec.default, parameter_descriptor(spec, overrides.get(spec.name))
        )


#: Per-camera scene-token parameters: (suffix, default, description).
_SCENE_CAMERA_PARAMS: tuple[tuple[str, str | None, str], ...] = (
    ("camera_info_topic", "/{cam}/camera_info", "CameraInfo topic"),
    ("translation", None, "static camera-to-base translation [x, y, z] (m)"),
    ("rotation", None, "static camera-to-base quaternion [x, y, z, w]"),
)


def _declare_once(node: Node, name: str, default: str | None, description: str) -> None:
    if not node.has_parameter(name):
        node.declare_parameter(
            name, default, ParameterDescriptor(description=description, dynamic_typing=True)
        )


def declare_camera_parameters(node: Node) -> None:
    """Declare the ``cameras.<name>.*`` parameters of every camera in ``cameras`` (once).

    Bad ``cameras`` values and camera names are left to the configure transition, which
    names them.
    """
    cams = node.get_parameter("cameras").value
    if not isinstance(cams, (list, tuple)):
        return  # on_configure reports it
    for cam in cams:
        if not isinstance(cam, str) or not CAMERA_NAME.match(cam):
            continue  # on_configure names the bad camera name
        tname = f"cameras.{cam}.transport"
        _declare_once(node, tname, "raw", f"Transport of camera {cam}: raw | compressed")
        transport = node.get_parameter(tname).value
        _declare_once(
            node,
            f"cameras.{cam}.topic",
            camera_param_defaults(cam, str(transport))["topic"],
            f"Input image topic of camera {cam}",
        )
        for suffix, scene_default, text in _SCENE_CAMERA_PARAMS:
            _declare_once(
                node,
                f"cameras.{cam}.{suffix}",
                None if scene_default is None else scene_default.format(cam=cam),
                f"Scene tokens: {text} of camera {cam}",
            )


def refuse_change(
    state: str,
    params: Sequence[Parameter[Any]],  # Any: rclpy's own typing of parameter values
) -> str | None:
    """Why a parameter change is refused, or None when it is accepted.

    Every parameter but :data:`RUNTIME_FREE` is read at configure: it may change only while
    the node is ``unconfigured``, and only to a valid value.

    Args:
        state: The node's lifecycle state label.
        params: The changed parameters (Any: rclpy's own typing of parameter values).
    """
    for param in params:
        if param.name in RUNTIME_FREE:
            continue
        if state != "unconfigured":
            return (
                f"parameter '{param.name}' is read when the node is configured "
                f"and cannot change while it is {state}: deactivate and clean up the "
                "node (ros2 lifecycle set <node> cleanup), set it, configure again"
            )
        value = param.value
        value = list(value) if isinstance(value, (list, tuple)) else value
        try:
            check_parameter(param.name, value)
        except ConfigError as exc:
            return f"invalid parameter '{exc.param}': {exc.message}"
    return None
