"""The skip policy (test/skip_policy.py): under CI=true only allow-listed skips pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from skip_policy import skip_allowed

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize(
    ("reason", "allowed"),
    [
        ("TensorRT is not installed (cannot be obtained here)", True),
        ("CUDA graphs need a CUDA device", True),
        ("no GPU on this machine", True),
        ("ROS 2 cv_bridge is not importable", True),
        ("launch_ros is not installed", True),
        ("sample video unavailable", False),
        ("could not import 'rclpy': No module named 'rclpy'", False),
        ("official RVM fixtures not found", False),
        ("module does not exist yet", False),
    ],
)
def test_allow_list(reason: str, allowed: bool) -> None:
    assert skip_allowed(reason) is allowed


ALLOWED = (
    "import pytest\n\n"
    "def test_ok():\n    assert True\n\n"
    "def test_no_trt():\n    pytest.skip('TensorRT is not installed')\n\n"
    "@pytest.mark.xfail(reason='known')\ndef test_xfail():\n    assert False\n"
)
REFUSED = "import pytest\n\ndef test_no_video():\n    pytest.skip('sample video unavailable')\n"
MODULE_SKIP = (
    "import pytest\npytest.importorskip('a_module_that_is_not_there')\n\n"
    "def test_never():\n    assert True\n"
)


def _run(tmp_path: Path, ci: str | None, **files: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "pytest", "-p", "skip_policy", "-p", "no:cacheprovider", "-q"]
    return subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_ci_fails_a_test_skipped_outside_the_allow_list(tmp_path: Path) -> None:
    result = _run(tmp_path, "true", test_allowed=ALLOWED, test_refused=REFUSED)
    out = result.stdout
    assert result.returncode == 1, out
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed" in out, out  # TensorRT stays a skip
    assert "outside the allow-list" in out and "sample video unavailable" in out, out


def test_ci_fails_a_module_skipped_outside_the_allow_list(tmp_path: Path) -> None:
    result = _run(tmp_path, "true", test_module_skip=MODULE_SKIP)
    assert result.returncode != 0, result.stdout
    assert "outside the allow-list" in result.stdout, result.stdout
    assert "a_module_that_is_not_there" in result.stdout, result.stdout


def test_without_ci_skips_stay_skips(tmp_path: Path) -> None:
    result = _run(
        tmp_path, None, test_allowed=ALLOWED, test_refused=REFUSED, test_module_skip=MODULE_SKIP
    )
    assert result.returncode == 0, result.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in result.stdout, result.stdout
