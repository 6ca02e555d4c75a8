"""``python -m rvm_ros.cli`` (and ``torchrun ... -m rvm_ros.cli train ...``) runs `rvm-ros`."""

from __future__ import annotations

import sys

from rvm_ros.cli import main

sys.exit(main())
