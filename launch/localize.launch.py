"""ros2 launch ros2_netvlad localize.launch.py map:=/path/to/map [image_topic:=/camera/image_raw]
..."""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(
        get_package_share_directory("ros2_netvlad"), "config", "localize.yaml"
    )
    arguments = [
        DeclareLaunchArgument(
            "map", default_value="", description="map directory (build_map --out)"
        ),
        DeclareLaunchArgument(
            "weights", default_value="", description="checkpoint; empty = the map's model.pt"
        ),
        DeclareLaunchArgument(
            "params_file", default_value=default_params, description="node parameters YAML"
        ),
        DeclareLaunchArgument(
            "image_topic",
            default_value="/camera/image_raw",
            description="raw image topic; <image_topic>/compressed is used for CompressedImage",
        ),
        DeclareLaunchArgument(
            "device", default_value="auto", description="auto, cpu, cuda or cuda:N"
        ),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock"),
    ]
    image_topic = LaunchConfiguration("image_topic")
    node = Node(
        package="ros2_netvlad",
        executable="netvlad_localizer",
        name="netvlad_localizer",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            # Strings stay strings (an empty map or weights path must not become YAML null).
            {
                "node.map": ParameterValue(LaunchConfiguration("map"), value_type=str),
                "model.weights": ParameterValue(LaunchConfiguration("weights"), value_type=str),
                "model.device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "use_sim_time": ParameterValue(
                    LaunchConfiguration("use_sim_time"), value_type=bool
                ),
            },
        ],
        remappings=[("image", image_topic), ("image/compressed", [image_topic, "/compressed"])],
        # When the node ends (refused to start, or stopped), the launch ends too instead of idling.
        on_exit=Shutdown(reason="netvlad_localizer exited"),
    )
    return LaunchDescription([*arguments, node])
