"""Launch the RVM perception node.

    ros2 launch rvm_ros rvm.launch.py checkpoint:=/path/to/rvm_S.safetensors
    ros2 launch rvm_ros rvm.launch.py \
        config_file:=$(ros2 pkg prefix rvm_ros)/share/rvm_ros/config/multi_camera.yaml \
        checkpoint:=/path/to/rvm_S.safetensors backend:=tensorrt namespace:=robot1

Arguments: ``config_file`` (ROS 2 parameters YAML; default: the package's config/rvm.yaml),
``namespace``, ``checkpoint`` (default ``builtin:default``, the shipped model; or a
.npz / .safetensors path or random:<variant>),
``backend`` (auto | torch | onnxruntime | tensorrt), ``image_topic`` (remaps the default
single-camera input ``/front/image_raw``), ``log_level``, ``fastdds_profile`` (the Fast DDS
XML profile set as ``FASTDDS_DEFAULT_PROFILES_FILE`` for the node; default: the package's
config/fastdds_large_images.xml, whose 16 MiB shared-memory segment holds camera images),
``use_fastdds_profile`` (``false``: leave the node's Fast DDS configuration as the
environment has it). The camera driver needs the same profile (or reliable QoS): the
sender's segment carries the data (docs/NODE.md, "Large images").

Input topics come from the ``cameras.<name>.topic`` parameters; every topic (inputs and the
``~/<camera>/...`` outputs) can also be remapped with ordinary ROS remapping rules.
The node is a lifecycle node that configures and activates itself (``autostart: true``).
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

BACKENDS = ["auto", "torch", "onnxruntime", "tensorrt"]


def generate_launch_description() -> LaunchDescription:
    """The launch description: arguments and the ``rvm`` lifecycle node."""
    default_config = PathJoinSubstitution([FindPackageShare("rvm_ros"), "config", "rvm.yaml"])
    default_profile = PathJoinSubstitution(
        [FindPackageShare("rvm_ros"), "config", "fastdds_large_images.xml"]
    )
    arguments = [
        DeclareLaunchArgument(
            "config_file",
            default_value=default_config,
            description="ROS 2 parameters YAML of the node (config/rvm.yaml, multi_camera.yaml)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="Node namespace"),
        DeclareLaunchArgument(
            "checkpoint",
            default_value="builtin:default",
            description="RVM checkpoint: builtin:default, .npz / .safetensors path, or "
            "random:<variant>",
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
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=default_profile,
            description=(
                "Fast DDS XML profile for the node (default: the package's "
                "config/fastdds_large_images.xml, a shared-memory segment that holds "
                "camera images); empty: Fast DDS defaults"
            ),
        ),
        DeclareLaunchArgument(
            "use_fastdds_profile",
            default_value="true",
            choices=["true", "false"],
            description="Apply fastdds_profile to the node (false: the environment's setup)",
        ),
    ]
    profile = LaunchConfiguration("fastdds_profile")
    use_profile = LaunchConfiguration("use_fastdds_profile")
    set_profile = SetEnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE",
        profile,
        condition=IfCondition(
            PythonExpression(["'", use_profile, "' == 'true' and '", profile, "' != ''"])
        ),
    )
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
    return LaunchDescription([*arguments, set_profile, node])
