"""The core never imports rclpy or message packages (DESIGN §1)."""

import pkgutil
import subprocess
import sys

import ros2_netvlad


def core_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(ros2_netvlad.__path__, "ros2_netvlad.")]
    return [n for n in names if not n.startswith(("ros2_netvlad.ros", "ros2_netvlad.tools"))]


def test_core_modules_import_without_rclpy():
    modules = core_modules()
    assert "ros2_netvlad.model.netvlad" in modules and "ros2_netvlad.model.describer" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'rclpy' or m.endswith('_msgs'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"core imported ROS modules: {result.stdout}"
