"""rvm_ros: RVM (Recurrent Video Masked Autoencoders) perception for ROS 2.

The generated ROS interfaces (``rvm_ros.msg``, ``rvm_ros.srv``) live in the colcon
install tree, the rest of the package in the source tree during development; the
package path is extended so both halves import as one package.
"""

from __future__ import annotations

from pkgutil import extend_path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typed access for mypy; at run time the import is lazy (__getattr__)
    from rvm_ros.checkpoint.load import load_model as load_model

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:  # Any: a module __getattr__ returns what it looks up
    """Lazy access to heavy API (``load_model``) so ``import rvm_ros`` stays light."""
    if name == "load_model":
        from rvm_ros.checkpoint.load import load_model

        return load_model
    raise AttributeError(f"module 'rvm_ros' has no attribute {name!r}")


__all__ = ["__version__", "load_model"]
