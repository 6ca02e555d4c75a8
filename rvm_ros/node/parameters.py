"""ROS parameter descriptors of the node's parameter table (ranges as the descriptor's
``integer_range`` / ``floating_point_range``, so ``ros2 param describe`` shows them and
rclpy enforces them)."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from rvm_ros.pipeline.config import ConfigError
from rvm_ros.pipeline.params import ParamSpec, check_parameter

__all__ = ["RUNTIME_FREE", "parameter_descriptor"]

#: Parameters that may change at any time (rclpy's own; not read by the node's config).
RUNTIME_FREE: frozenset[str] = frozenset({"use_sim_time"})
_INT_MAX = 2**63 - 1


def parameter_descriptor(spec: ParamSpec, given: Any = None) -> ParameterDescriptor:
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
