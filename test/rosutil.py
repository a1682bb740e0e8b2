"""Helpers for tests over real rclpy: an isolated ROS domain per test process, the node as a
subprocess started like the launch file starts it, and waiting on discovery with timeouts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "config" / "localize.yaml"


def configure_environment(log_dir: Path) -> None:
    """Call before rclpy.init: a domain of our own, fast discovery, logs in tmp."""
    os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 200)
    os.environ["ROS_LOG_DIR"] = str(log_dir)
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(REPO / "test" / "fastdds_profile.xml")
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


def ros_session(log_dir: Path, name: str):
    """Generator for a module fixture: an isolated rclpy context with one client node and
    executor."""
    configure_environment(log_dir)
    rclpy.init()
    node = rclpy.create_node(name)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


def executable(name: str) -> str:
    """The installed console script (lib/ros2_netvlad on a ROS install, bin/ in a venv)."""
    found = shutil.which(name, path=str(Path(sys.prefix) / "bin")) or shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed; run `make install` (pip install .)")
    return found


def node_command(
    params: dict[str, object], remaps: dict[str, str], extra_params_file: Path | None = None
) -> list[str]:
    """The node's command line as the launch file builds it: the shipped params file, then
    ``extra_params_file``, parameters and remaps."""
    args = [executable("netvlad_localizer"), "--ros-args", "--params-file", str(PARAMS)]
    if extra_params_file:
        args += ["--params-file", str(extra_params_file)]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    for source, target in remaps.items():
        args += ["-r", f"{source}:={target}"]
    return args


def start_node(
    params: dict[str, object],
    remaps: dict[str, str],
    extra_params_file: Path | None = None,
    log: Path | None = None,
) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.DEVNULL
    args = node_command(params, remaps, extra_params_file)
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))


def spin_until(executor: SingleThreadedExecutor, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        executor.spin_once(timeout_sec=0.05)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop(process: subprocess.Popen, timeout: float = 20.0) -> int:
    if process.poll() is None:
        process.send_signal(2)  # SIGINT, as Ctrl-C / ros2 launch does
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


__all__ = [
    "configure_environment",
    "executable",
    "node_command",
    "ros_session",
    "start_node",
    "spin_until",
    "stop",
    "rclpy",
]
