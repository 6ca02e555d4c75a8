"""The executor ``rvm_node`` spins on, chosen by the ``executor`` parameter.

``events`` is rclpy's ``EventsExecutor`` (``rclpy.experimental``, Jazzy and later): a C++
event queue instead of a Python wait-set rebuilt on every spin, which cuts the Python work
per camera frame. ``single_threaded`` is ``SingleThreadedExecutor``. ``auto`` (the default)
takes ``events`` where this rclpy has it. Both keep the node's semantics: one thread runs
every callback in arrival order, so the node needs no locks beyond its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rclpy.context import Context
    from rclpy.executors import Executor

__all__ = ["EXECUTOR_CHOICES", "events_executor_available", "make_executor"]

#: Values of the ``executor`` parameter.
EXECUTOR_CHOICES = ("auto", "events", "single_threaded")


def events_executor_available() -> bool:
    """Whether this rclpy ships ``rclpy.experimental.EventsExecutor``."""
    try:
        from rclpy.experimental.events_executor import EventsExecutor  # noqa: F401
    except ImportError:
        return False
    return True


def make_executor(choice: str, context: Context | None = None) -> tuple[Executor, str]:
    """The executor for ``choice`` (one of :data:`EXECUTOR_CHOICES`) and a line saying which
    one runs and why (``events`` falls back to ``single_threaded`` where rclpy lacks it).

    Args:
        choice: The ``executor`` parameter.
        context: The rclpy context (default: the global one).
    """
    from rclpy.executors import SingleThreadedExecutor

    if choice not in EXECUTOR_CHOICES:
        raise ValueError(f"executor must be one of {EXECUTOR_CHOICES}, got {choice!r}")
    if choice != "single_threaded":
        if events_executor_available():
            from rclpy.experimental.events_executor import EventsExecutor

            return EventsExecutor(context=context), f"EventsExecutor (executor={choice})"
        if choice == "events":
            return (
                SingleThreadedExecutor(context=context),
                "SingleThreadedExecutor: executor=events asked, but this rclpy has no "
                "rclpy.experimental.EventsExecutor (Jazzy or later)",
            )
    return SingleThreadedExecutor(context=context), f"SingleThreadedExecutor (executor={choice})"
