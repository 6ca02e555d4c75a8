"""``rvm_node``: ``rvm_node --ros-args --params-file config/rvm.yaml -p checkpoint:=X``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rvm`` lifecycle node until interrupted.

    With ``autostart`` (the default) the node configures and activates itself; otherwise
    it waits in ``unconfigured`` for lifecycle transitions (``~/change_state``).

    Args:
        argv: Command line (``sys.argv`` when None), ROS arguments included.

    Returns:
        The process exit code (0 on a clean shutdown).
    """
    import signal

    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.signals import SignalHandlerOptions

    from rvm_ros.node.executor import make_executor
    from rvm_ros.node.node import RvmNode
    from rvm_ros.signals import raise_interrupt

    args = list(sys.argv if argv is None else argv)
    # Our own signal handling: SIGINT / SIGTERM end the spin while the context is still
    # valid, so the shutdown transition can stop the inference thread and release the runtime.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)

    signal.signal(signal.SIGTERM, raise_interrupt)
    node = RvmNode()
    log = node.get_logger()
    executor, which = make_executor(str(node.get_parameter("executor").value))
    log.info(f"spinning on {which}")
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value is True:
            ok = TransitionCallbackReturn.SUCCESS
            if node.trigger_configure() != ok:
                log.error("autostart: configure failed; the node stays unconfigured")
            elif node.trigger_activate() != ok:
                log.error("autostart: activate failed; the node stays inactive")
            else:
                log.info("autostart: active")
        # spin_once with a timeout: the wait returns regularly, so Python's SIGINT / SIGTERM
        # handlers run even when no timer is left (e.g. in the finalized state).
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if rclpy.ok() and node.lifecycle_state in ("unconfigured", "inactive", "active"):
            node.trigger_shutdown()
        node.release()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
