"""pip build hook: ship the ROS interface definitions inside the Python package.

`pip install .` (no ROS) installs the same `rvm_ros` Python package that colcon installs;
off-robot tools (replay, make-bag) register our message types with `rosbags` from the
`.msg` text, so the wheel carries `msg/` and `srv/` as `rvm_ros/interfaces/`.
Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithInterfaces(build_py):
    """build_py that also copies msg/*.msg and srv/*.srv into rvm_ros/interfaces/."""

    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        dest = Path(self.build_lib) / "rvm_ros" / "interfaces"
        dest.mkdir(parents=True, exist_ok=True)
        for pattern in ("msg/*.msg", "srv/*.srv"):
            for src in sorted(root.glob(pattern)):
                shutil.copy2(src, dest / src.name)


setup(cmdclass={"build_py": BuildWithInterfaces})
