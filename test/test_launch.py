"""The launch description: node, executable, parameters and remaps. launch_ros exists only on a ROS
2
install (e.g. under `colcon test`); elsewhere this module is reported as skipped, and the subprocess
tests in test_node.py start the node exactly as this launch file does."""

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip(
    "launch_ros", reason="launch_ros comes with a ROS 2 install, not with PyPI wheels"
)

from launch.actions import DeclareLaunchArgument  # noqa: E402
from launch_ros.actions import Node  # noqa: E402

from launch import LaunchContext  # noqa: E402

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "localize.launch.py"


def load_description():
    spec = importlib.util.spec_from_file_location("localize_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def test_launch_description_declares_arguments_and_node():
    description = load_description()
    names = {a.name for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    assert names == {
        "map",
        "weights",
        "params_file",
        "image_topic",
        "device",
        "namespace",
        "use_sim_time",
    }
    nodes = [e for e in description.entities if isinstance(e, Node)]
    assert len(nodes) == 1
    context = LaunchContext()
    for argument in description.entities:
        if isinstance(argument, DeclareLaunchArgument):
            argument.visit(context)
    context.launch_configurations.update({"map": "/maps/campus", "image_topic": "/cam"})
    node = nodes[0]
    node._perform_substitutions(context)
    assert node.node_package == "ros2_netvlad" and node.node_executable == "netvlad_localizer"
    remaps = dict(node.expanded_remapping_rules)
    assert remaps == {"image": "/cam", "image/compressed": "/cam/compressed"}


def test_launch_ends_when_the_node_exits_and_applies_params_under_a_namespace():
    description = load_description()
    node = next(e for e in description.entities if isinstance(e, Node))
    context = LaunchContext()
    for argument in description.entities:
        if isinstance(argument, DeclareLaunchArgument):
            argument.visit(context)
    context.launch_configurations.update({"namespace": "robot1"})
    node._perform_substitutions(context)
    assert node.expanded_node_namespace == "/robot1"
    # launch keeps it private: ExecuteLocal (Iron and later) or ExecuteProcess (Humble)
    on_exit = getattr(node, "_ExecuteLocal__on_exit", None) or getattr(
        node, "_ExecuteProcess__on_exit", None
    )
    assert on_exit is not None, "the node needs on_exit=Shutdown() so launch ends when it exits"


@pytest.mark.skipif(shutil.which("ros2") is None, reason="the ros2 CLI comes with a ROS 2 install")
def test_ros2_launch_stops_when_the_node_refuses_to_start(tmp_path):
    """The real launch stack: a missing map → one line from the node, exit 2, and launch ends
    too."""
    result = subprocess.run(
        [
            "ros2",
            "launch",
            "ros2_netvlad",
            "localize.launch.py",
            "namespace:=robot1",
            f"map:={tmp_path / 'missing'}",
            "device:=cpu",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "ROS_LOG_DIR": str(tmp_path)},
    )
    output = result.stdout + result.stderr
    assert "refusing to start" in output and "map directory not found" in output, output[-3000:]
    assert "Traceback" not in output
