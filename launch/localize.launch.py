"""ros2 launch ros2_netvlad localize.launch.py map:=/path/to/map [image_topic:=/camera/image_raw]
[mode:=loop_closure odom_topic:=/odom] ...  (`ros2 launch ros2_netvlad localize.launch.py -s` lists
every argument).

Stopping: Ctrl-C, SIGINT, SIGTERM or SIGHUP to `ros2 launch` (or its process group) all stop the
node the same way (a grown map is saved) and launch returns once the node has exited."""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from ros2_netvlad.ros.launching import end_with_the_node, require_file, stop_gracefully_on_sigterm

ARGUMENTS = {  # name: (default, description)
    "map": ("", "map directory (build_map --out); created in loop_closure mode"),
    "weights": ("", "checkpoint; empty = the map's model.pt"),
    "params_file": ("", "node parameters YAML; empty = the shipped config/localize.yaml"),
    "image_topic": ("/camera/image_raw", "raw image topic; <image_topic>/compressed is used too"),
    "device": ("auto", "auto, cpu, cuda or cuda:N"),
    "namespace": ("", "node namespace"),
    "use_sim_time": ("false", "use /clock (housekeeping still runs on a steady clock)"),
    "mode": ("", "localize | loop_closure; empty = the params file's"),
    "odom_topic": ("odom", "odometry topic (loop_closure mode), relative to the namespace"),
    "map_frame": ("", "frame_id of published poses; empty = the params file's (auto)"),
    "stop_timeout": ("30.0", "seconds launch waits after SIGINT before SIGTERM, then SIGKILL"),
}


def generate_launch_description() -> LaunchDescription:
    stop_gracefully_on_sigterm()
    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, (default, description) in ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])


def _node(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    shipped = os.path.join(get_package_share_directory("ros2_netvlad"), "config", "localize.yaml")
    params_file = require_file(value["params_file"] or shipped, "params_file")
    overrides = {  # strings stay strings: an empty map path must not become YAML null
        "node.map": value["map"],
        "model.weights": value["weights"],
        "model.device": value["device"],
        "use_sim_time": value["use_sim_time"].lower() in ("true", "1", "yes"),
    }
    overrides.update({f"node.{k}": value[k] for k in ("mode", "map_frame") if value[k]})
    image = value["image_topic"]
    node = Node(
        package="ros2_netvlad",
        executable="netvlad_localizer",
        name="netvlad_localizer",
        namespace=value["namespace"],
        output="screen",
        parameters=[params_file, overrides],
        remappings=[
            ("image", image),
            ("image/compressed", f"{image}/compressed"),
            ("odom", value["odom_topic"]),
        ],
        sigterm_timeout=value["stop_timeout"],
        sigkill_timeout=value["stop_timeout"],
    )
    on_exit = OnProcessExit(target_action=node, on_exit=end_with_the_node("netvlad_localizer"))
    return [node, RegisterEventHandler(on_exit)]
