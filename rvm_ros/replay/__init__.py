"""Off-robot bag tools: make bags from videos, replay bags through the node's processing
core, play bags over DDS, and write evaluation reports.

Modules: :mod:`~rvm_ros.replay.make_bag`, :mod:`~rvm_ros.replay.replay`,
:mod:`~rvm_ros.replay.play`, :mod:`~rvm_ros.replay.report`, :mod:`~rvm_ros.replay.demo`.
"""

from __future__ import annotations

__all__: list[str] = []
