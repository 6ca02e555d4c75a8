"""The one error base class of the package.

Every error that rvm_ros raises on purpose derives from :class:`RvmRosError` and carries
a short stable ``cause`` key (for diagnostics, logs and tests; never reworded) and the
exit code a command ends with when the error reaches the CLI: 2 for a usage error (bad
arguments, bad configuration), 1 for a runtime failure (unreadable input, failed export).
Each package defines its own subclasses; the CLI prints any ``RvmRosError`` as one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


def listing(names: Iterable[str], limit: int | None = 8) -> str:
    """``a, b, c (and 5 more)``: names joined, at most ``limit`` shown (None: all)."""
    names = list(names)
    shown = names if limit is None else names[:limit]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def key_differences(
    expected: Mapping[str, Any] | Iterable[str],
    got: Mapping[str, Any] | Iterable[str],
    missing: str = "missing key(s):",
    unexpected: str = "unexpected key(s):",
    mismatched: str = "shape mismatch:",
    limit: int | None = 8,
    describe: Callable[[str, Any, Any], str] | None = None,
) -> list[str]:
    """The one reporter of two key sets that should agree (and, for mappings, their values).

    Args:
        expected: The keys wanted (a mapping also gives the value each should have).
        got: The keys found (a mapping also gives their values).
        missing: Label of the keys in ``expected`` only.
        unexpected: Label of the keys in ``got`` only.
        mismatched: Label of common keys whose values differ (both mappings only).
        limit: Most names listed per kind (None: all).
        describe: ``describe(key, got, expected)`` text of a value mismatch (default
            ``key <got> (expected <expected>)``).

    Returns:
        One ``"<label> <names>"`` per kind that occurs, in the order missing, unexpected,
        mismatched; empty when the two agree. Names are sorted.
    """
    want = set(expected)
    have = set(got)
    problems = []
    if gone := sorted(want - have):
        problems.append(f"{missing} {listing(gone, limit)}")
    if extra := sorted(have - want):
        problems.append(f"{unexpected} {listing(extra, limit)}")
    if isinstance(expected, Mapping) and isinstance(got, Mapping):
        text = describe or (lambda k, g, e: f"{k} {g} (expected {e})")
        differ = sorted(text(k, got[k], expected[k]) for k in want & have if got[k] != expected[k])
        if differ:
            problems.append(f"{mismatched} {listing(differ, limit)}")
    return problems


__all__ = ["RvmRosError", "key_differences", "listing"]
