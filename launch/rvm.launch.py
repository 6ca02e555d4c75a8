"""Launch the RVM perception node.

    ros2 launch rvm_ros rvm.launch.py checkpoint:=/path/to/rvm_S.safetensors
    ros2 launch rvm_ros rvm.launch.py \
        config_file:=$(ros2 pkg prefix rvm_ros)/share/rvm_ros/config/multi_camera.yaml \
        checkpoint:=/path/to/rvm_S.safetensors backend:=tensorrt namespace:=robot1

Arguments: ``config_file`` (ROS 2 parameters YAML; default: the package's config/rvm.yaml),
``namespace``, ``checkpoint`` (required: .npz / .safetensors path or random:<variant>),
``backend`` (auto | torch | onnxruntime | tensorrt), ``image_topic`` (remaps the default
single-camera input ``/front/image_raw``), ``log_level``.

Input topics come from the ``cameras.<name>.topic`` parameters; every topic (inputs and the
``~/<camera>/...`` outputs) can also be remapped with ordinary ROS remapping rules.
The node is a lifecycle node that configures and activates itself (``autostart: true``).
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

BACKENDS = ["auto", "torch", "onnxruntime", "tensorrt"]


def generate_launch_description() -> LaunchDescription:
    """The launch description: arguments and the ``rvm`` lifecycle node."""
    default_config = PathJoinSubstitution([FindPackageShare("rvm_ros"), "config", "rvm.yaml"])
    arguments = [
        DeclareLaunchArgument(
            "config_file",
            default_value=default_config,
            description="ROS 2 parameters YAML of the node (config/rvm.yaml, multi_camera.yaml)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="Node namespace"),
        DeclareLaunchArgument(
            "checkpoint",
            description="RVM checkpoint: .npz / .safetensors path, or random:<variant>",
        ),
        DeclareLaunchArgument(
            "backend", default_value="auto", choices=BACKENDS, description="Inference backend"
        ),
        DeclareLaunchArgument(
            "image_topic",
            default_value="/front/image_raw",
            description="Remap the default single-camera input topic /front/image_raw",
        ),
        DeclareLaunchArgument(
            "log_level", default_value="info", description="debug | info | warn | error"
        ),
    ]
    node = LifecycleNode(
        package="rvm_ros",
        executable="rvm_node",
        name="rvm",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("config_file"),
            {
                "checkpoint": LaunchConfiguration("checkpoint"),
                "backend": LaunchConfiguration("backend"),
            },
        ],
        remappings=[("/front/image_raw", LaunchConfiguration("image_topic"))],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    )
    return LaunchDescription([*arguments, node])
