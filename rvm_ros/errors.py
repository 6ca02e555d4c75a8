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

    def __init__(self, *args: Any, cause: str | None = None) -> None:  # Any: as Exception
        super().__init__(*args)
        if cause is not None:
            self.cause = cause

    def __reduce__(self) -> tuple[Any, ...]:  # Any: pickle's reduce tuple
        # Keep the instance cause across pickling (errors cross worker-process boundaries).
        return (_rebuild, (type(self), self.args, self.__dict__))


# Any: the exception's args and attributes, as pickled.
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


# Any: the compared values are whatever the caller's mappings hold (shapes, tensors, ...).
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


__all__ = [
    "ALLOC_LIMIT_ENV",
    "RvmRosError",
    "TooLarge",
    "allocation_limit",
    "check_size",
    "format_bytes",
    "key_differences",
    "listing",
]


# ----------------------------------------------------------------- allocation bounds

_GIB = 1 << 30
#: Environment variable overriding the most bytes one request may ask to allocate.
ALLOC_LIMIT_ENV = "RVM_ROS_MAX_ALLOC_BYTES"


class TooLarge(RvmRosError, ValueError):
    """A size, count or length from a request, file, config or argument is too large.

    Raised before anything is allocated, with the memory the request would need.
    """

    cause = "too_large"
    exit_code = 2


def _physical_memory() -> int:
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * _GIB


def allocation_limit() -> int:
    """Most bytes one request may need: ``$RVM_ROS_MAX_ALLOC_BYTES``, else half the RAM."""
    import os

    env = os.environ.get(ALLOC_LIMIT_ENV, "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return _physical_memory() // 2


def format_bytes(n: float) -> str:
    """``1.5 GiB``-style text of a byte count."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_size(
    what: str,
    count: Any,  # Any: ints, numpy integers or sizes read from headers, checked below
    *,
    most: int | None = None,
    bytes_each: float = 1.0,
    extra_bytes: float = 0.0,
    limit_bytes: int | None = None,
    hint: str = "",
) -> int:
    """The one bound on sizes that input controls; raises `TooLarge` before allocating.

    Args:
        what: How the message names the size (``"query points"``, ``"pos_grid"``).
        count: The size asked for (an int; anything else is refused as not a size).
        most: Largest count allowed outright (None: memory decides alone).
        bytes_each: Estimated bytes per unit of ``count``.
        extra_bytes: Estimated bytes independent of ``count``.
        limit_bytes: Memory budget (default :func:`allocation_limit`).
        hint: Appended to the message (what to do instead).

    Returns:
        ``count`` as an int.

    Raises:
        TooLarge: ``count`` is not a non-negative integer, exceeds ``most``, or its memory
            estimate exceeds the budget.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise TooLarge(f"{what}: {str(count)[:40]} is not a size (a non-negative integer)")
    budget = allocation_limit() if limit_bytes is None else limit_bytes
    tail = f"; {hint}" if hint else ""
    shown = str(count) if count < 10**15 else f"a {len(str(count))}-digit number"
    if most is not None and count > most:
        raise TooLarge(f"{what}: {shown} is more than the {most} allowed{tail}")
    need = float(min(count, 10**300)) * float(bytes_each) + float(extra_bytes)
    if need > budget:
        raise TooLarge(
            f"{what}: {shown} would need about {format_bytes(need)} of memory, more than "
            f"the {format_bytes(budget)} allowed (${ALLOC_LIMIT_ENV}){tail}"
        )
    return count
