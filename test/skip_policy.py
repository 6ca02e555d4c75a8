"""Skips that mean something: under ``CI=true`` a test skipped for any reason outside
:data:`ALLOWED_SKIPS` fails the run.

A skip is allowed only where the machine lacks something this workplace cannot provide
(TensorRT, a CUDA device, a working ROS 2 cv_bridge, launch_ros); anything else (a missing
fixture, sample video, rclpy or generated message) is a broken test environment and must
not turn into a quiet skip on CI. Loaded by test/conftest.py; tested by
test/test_skip_policy.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from typing import Any

import pytest

#: (what the machine lacks, pattern a skip reason must match). Matching is case-insensitive.
ALLOWED_SKIPS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("no TensorRT", re.compile(r"tensorrt", re.IGNORECASE)),
    ("no CUDA device", re.compile(r"\bcuda\b|\bgpu\b", re.IGNORECASE)),
    ("no ROS 2 cv_bridge", re.compile(r"cv_bridge", re.IGNORECASE)),
    ("no launch_ros", re.compile(r"launch_ros", re.IGNORECASE)),
)


def enforced() -> bool:
    """Whether the policy applies (``CI`` is ``true`` / ``1`` / ``yes``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_allowed(reason: str) -> bool:
    """Whether a skip with this reason is on the allow-list."""
    return any(pattern.search(reason) for _, pattern in ALLOWED_SKIPS)


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _refuse(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = _reason(report)
    allowed = ", ".join(what for what, _ in ALLOWED_SKIPS)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true for a reason outside the allow-list ({allowed}): {reason}"
    )


def _check(report: pytest.TestReport | pytest.CollectReport) -> None:
    skipped = report.skipped and not hasattr(report, "wasxfail")
    if skipped and enforced() and not skip_allowed(_reason(report)):
        _refuse(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[Any]:
    """Turn a disallowed skip of a test (setup or call) into a failure under CI."""
    outcome = yield
    _check(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[Any]:
    """Turn a disallowed module-level skip (``importorskip``) into a failure under CI."""
    outcome = yield
    _check(outcome.get_result())
