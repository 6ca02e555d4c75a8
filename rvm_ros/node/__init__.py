"""The rclpy perception node (``rvm_node``): lifecycle, QoS, diagnostics, and bag playback.

Every module here needs rclpy. The node's parameter table and its conversion into a
validated configuration are ROS-free and live in :mod:`rvm_ros.pipeline.params` (bag
replay uses them off-robot).
"""

__all__: list[str] = []
