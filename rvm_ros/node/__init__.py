"""The rclpy perception node (``rvm_node``): lifecycle, parameters, QoS, diagnostics.

``rvm_ros.node.config`` is importable without rclpy (bag replay uses it off-robot); the
other modules need rclpy.
"""
