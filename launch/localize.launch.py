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
from ros2_netvlad.camera import camera_info_topic
from ros2_netvlad.ros.launching import end_with_the_node, require_file, stop_gracefully_on_sigterm

ARGUMENTS = {  # name: (default, description)
    "map": ("", "map directory (build_map --out); created in loop_closure mode"),
    "weights": ("", "checkpoint; empty = the params file's, else the map's model.pt"),
    "params_file": ("", "node parameters YAML; empty = the shipped config/localize.yaml"),
    "image_topic": ("/camera/image_raw", "raw image topic; <image_topic>/compressed is used too"),
    "device": ("", "auto, cpu, cuda or cuda:N; empty = the params file's (auto)"),
    "namespace": ("", "node namespace"),
    "use_sim_time": ("", "true: message time from /clock (housekeeping stays on a steady clock)"),
    "mode": ("", "localize | loop_closure; empty = the params file's"),
    "odom_topic": (
        "odom",
        "odometry topic (revisit tracking; keyframe poses in loop_closure mode), relative to "
        "the namespace",
    ),
    "map_frame": ("", "frame_id of published poses; empty = the params file's (auto)"),
    "camera_info_topic": ("", "CameraInfo; empty = the image topic's sibling (.../camera_info)"),
    "depth_topic": ("depth", "aligned depth image (16UC1 mm or 32FC1 m), loop_closure mode"),
    "camera_to_base": (
        "",
        "'x y z qx qy qz qw' of the optical frame on the robot; empty = the params file's",
    ),
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
    # an argument left empty leaves the params file's value alone
    given = {"node.map": "map", "model.weights": "weights", "model.device": "device"}
    given.update({"node.mode": "mode", "node.map_frame": "map_frame"})
    given["node.camera_to_base"] = "camera_to_base"
    overrides = {name: value[argument] for name, argument in given.items() if value[argument]}
    if value["use_sim_time"]:
        overrides["use_sim_time"] = value["use_sim_time"].lower() in ("true", "1", "yes")
    image = value["image_topic"]
    node = Node(
        package="ros2_netvlad",
        executable="netvlad_localizer",
        name="netvlad_localizer",
        namespace=value["namespace"],
        output="screen",
        parameters=[params_file, overrides] if overrides else [params_file],
        remappings=[
            ("image", image),
            ("image/compressed", f"{image}/compressed"),
            ("odom", value["odom_topic"]),
            ("camera_info", value["camera_info_topic"] or camera_info_topic(image)),
            ("depth", value["depth_topic"]),
        ],
        sigterm_timeout=value["stop_timeout"],
        sigkill_timeout=value["stop_timeout"],
    )
    on_exit = OnProcessExit(target_action=node, on_exit=end_with_the_node("netvlad_localizer"))
    return [node, RegisterEventHandler(on_exit)]
