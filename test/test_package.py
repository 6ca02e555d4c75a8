"""The repository is one ROS 2 package that colcon builds and pip installs (issue 2)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "install" / "rvm_ros"


def _interface_files() -> list[Path]:
    return sorted((REPO / "msg").glob("*.msg")) + sorted((REPO / "srv").glob("*.srv"))


def test_package_xml_is_format3_ament_cmake_with_real_dependencies() -> None:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "rvm_ros"
    assert root.findtext("export/build_type") == "ament_cmake"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    for dep in ("rosidl_default_generators", "std_msgs", "rclpy", "sensor_msgs", "std_srvs"):
        assert dep in deps, dep
    assert root.findtext("member_of_group") == "rosidl_interface_packages"
    email = root.find("maintainer").get("email")  # type: ignore[union-attr]
    assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", email or ""), email


def test_cmakelists_generates_every_interface_file() -> None:
    cmake = (REPO / "CMakeLists.txt").read_text()
    for f in _interface_files():
        assert f'"{f.parent.name}/{f.name}"' in cmake, f"{f.name} not in rosidl_generate_interfaces"


@pytest.mark.parametrize("path", _interface_files(), ids=lambda p: p.name)
def test_every_interface_field_is_documented(path: Path) -> None:
    """Each field line is directly preceded by a comment (or another documented field)."""
    lines = path.read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith("#") or s == "---" or "=" in s.split("#")[0]:
            continue
        j = i - 1
        while j >= 0 and lines[j].strip() and not lines[j].strip().startswith("#"):
            j -= 1  # a group of related fields shares the comment above it
        if j < 0 or not lines[j].strip().startswith("#"):
            undocumented.append(s)
    assert not undocumented, f"undocumented fields in {path.name}: {undocumented}"


def test_colcon_install_tree_has_executable_launch_config_and_interfaces() -> None:
    assert (INSTALL / "lib" / "rvm_ros" / "rvm_node").exists(), "ros2 run rvm_ros rvm_node"
    assert os.access(INSTALL / "lib" / "rvm_ros" / "rvm_node", os.X_OK)
    share = INSTALL / "share" / "rvm_ros"
    assert (share / "package.xml").exists()
    assert (share / "launch" / "rvm.launch.py").exists()
    assert (share / "config" / "rvm.yaml").exists()
    assert (share / "msg" / "FeatureMap.msg").exists()
    index = INSTALL / "share" / "ament_index" / "resource_index" / "rosidl_interfaces" / "rvm_ros"
    names = set(index.read_text().split())
    assert {"msg/FeatureMap.msg", "msg/TrackedPoints.msg", "srv/SetQueryPoints.srv"} <= names


def test_generated_interfaces_import_with_documented_fields() -> None:
    from rvm_ros.msg import FeatureMap, TrackedPoint, TrackedPoints
    from rvm_ros.srv import SetQueryPoints

    fm = FeatureMap()
    assert FeatureMap.DTYPE_FLOAT16 == 1 and FeatureMap.DTYPE_FLOAT32 == 0
    for field in ("camera", "model_id", "grid_height", "features", "cls_token", "scale_x"):
        assert hasattr(fm, field), field
    tp = TrackedPoints(points=[TrackedPoint(id=3, x=1.5, y=2.5, visible=True, confidence=0.5)])
    assert tp.points[0].id == 3
    assert SetQueryPoints.Request().append is False


def test_console_scripts_are_installed_in_the_venv() -> None:
    bindir = Path(sys.executable).parent
    for name in ("rvm-ros", "rvm_node"):
        assert (bindir / name).exists(), f"{name} missing from {bindir}"


def test_rvm_ros_cli_runs_without_ros_environment() -> None:
    """`.venv/bin/rvm-ros` works without sourcing install/ (no ROS needed off-robot)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    env.pop("LD_LIBRARY_PATH", None)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "rvm-ros"), "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    for sub in ("convert", "fetch", "encode", "export", "bench", "replay", "make-bag", "play"):
        assert sub in out.stdout, sub


def test_wheel_ships_interface_definitions(tmp_path: Path) -> None:
    """`pip install .` carries msg/ and srv/ for rosbags type registration."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    import zipfile

    (wheel,) = tmp_path.glob("rvm_ros-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "rvm_ros/interfaces/FeatureMap.msg" in names
    assert "rvm_ros/cli/__init__.py" in names
