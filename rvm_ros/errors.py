"""The one error base class of the package.

Every error that rvm_ros raises on purpose derives from :class:`RvmRosError` and carries
a short stable ``cause`` key (for diagnostics, logs and tests; never reworded) and the
exit code a command ends with when the error reaches the CLI: 2 for a usage error (bad
arguments, bad configuration), 1 for a runtime failure (unreadable input, failed export).
Each package defines its own subclasses; the CLI prints any ``RvmRosError`` as one line.
"""

from __future__ import annotations

from typing import Any


class RvmRosError(Exception):
    """Base class of every error rvm_ros raises on purpose.

    Attributes:
        cause: Short stable key naming the kind of failure (class default, or per instance).
        exit_code: Exit code of a command that ends with this error (1 runtime, 2 usage).
    """

    cause: str = "error"
    exit_code: int = 1

    def __init__(self, *args: Any, cause: str | None = None) -> None:
        super().__init__(*args)
        if cause is not None:
            self.cause = cause

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the instance cause across pickling (errors cross worker-process boundaries).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[RvmRosError], args: tuple[Any, ...], state: dict[str, Any]) -> RvmRosError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


__all__ = ["RvmRosError"]
