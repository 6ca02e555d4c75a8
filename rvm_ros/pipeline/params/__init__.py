"""Node parameters: one declaration table, one conversion to a frozen, validated config.

Everything here is pure Python (no rclpy), so off-robot tools (bag replay) read the same
ROS 2 parameter files and get exactly the configuration the node would run with:

>>> params = load_params_file("config/rvm.yaml")  # {"cameras": ["front"], ...}
>>> cfg = config_from_params(params)              # NodeConfig, or raises ConfigError

The node declares every entry of :data:`PARAMS` (plus the per-camera
``cameras.<name>.topic`` / ``cameras.<name>.transport``) and calls
:func:`config_from_params` on the declared values in ``on_configure``.

This package is the public face (import from here); its parts:

* :mod:`.table`: the declaration table (``ParamSpec``, ``PARAMS``, per-camera names);
* :mod:`.checks`: one value checked on its own (``check_parameter``);
* :mod:`.convert`: all values -> the frozen ``NodeConfig`` (``config_from_params``), with
  :mod:`.scene_tokens` for the ``scene_tokens.*`` part;
* :mod:`.yaml_file`: ROS 2 parameter files (``load_params_file``);
* :mod:`.reference`: the parameter reference of docs/NODE.md (``parameters_markdown``).

The configurations themselves (``NodeConfig``, ``ProcessingConfig``,
``SceneTokensConfig``) live in :mod:`rvm_ros.pipeline.config`.
"""

from __future__ import annotations

from rvm_ros.pipeline.config import CAMERA_NAME, ConfigError, NodeConfig
from rvm_ros.pipeline.params.checks import check_parameter
from rvm_ros.pipeline.params.convert import checkpoint_patch_size, config_from_params
from rvm_ros.pipeline.params.reference import parameters_markdown
from rvm_ros.pipeline.params.table import (
    CAMERA_PARAM_SUFFIXES,
    PARAMS,
    TRANSPORTS,
    ParamSpec,
    ParamValue,
    camera_param_defaults,
    unknown_parameters,
)
from rvm_ros.pipeline.params.yaml_file import load_params_file

__all__ = [
    "CAMERA_NAME",
    "CAMERA_PARAM_SUFFIXES",
    "PARAMS",
    "TRANSPORTS",
    "ConfigError",
    "NodeConfig",
    "ParamSpec",
    "ParamValue",
    "camera_param_defaults",
    "check_parameter",
    "checkpoint_patch_size",
    "config_from_params",
    "load_params_file",
    "parameters_markdown",
    "unknown_parameters",
]
