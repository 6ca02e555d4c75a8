"""Skip markers shared by the test modules.

OpenVINO is a dependency of the project (``make setup`` installs it), so under ``CI=true``
a skip for its absence is refused by test/skip_policy.py; the marker only keeps a broken
local environment readable. (test/runtime/test_openvino_signal_stack.py keeps its own:
a subprocess imports that module outside pytest's path.)
"""

from __future__ import annotations

import pytest

from rvm_ros.runtime.backends.openvino import openvino_available

OV_OK, OV_WHY = openvino_available()
needs_openvino = pytest.mark.skipif(not OV_OK, reason=f"OpenVINO cannot be imported here: {OV_WHY}")
