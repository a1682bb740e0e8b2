"""replay_eval: a query bag through the live node, scored against the bag's ground truth.

Starts netvlad_localizer (same parameters as the launch file) in a ROS domain of its own, replays
the bag's image topic, records ~/loop_closures and ~/pose_prior, stops the node cleanly and writes
the evaluation report plus latency, throughput and pose-prior error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import PointCloud2

from ros2_netvlad.config import params_block, write_resolved_config
from ros2_netvlad.errors import NetVLADError
from ros2_netvlad.evaluation.replay import ground_truth, header_stamps, score_replay
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.ros.conversions import cloud_to_candidates, stamp_to_ns
from ros2_netvlad.ros.replay import BagReplayer
from ros2_netvlad.ros.shutdown import Spinner
from ros2_netvlad.sources.rosbag import PoseLookup

# the node this tool starts: its own process, in its own domain, at the root namespace
NODE = "/netvlad_localizer"


def default_params_file() -> Path:
    """The installed config/localize.yaml (as the launch file uses), else the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("ros2_netvlad")) / "config" / "localize.yaml"
        if installed.is_file():
            return installed
    except (ImportError, LookupError, ValueError, OSError):  # no ament index: use the source tree
        pass
    return Path(__file__).resolve().parents[2] / "config" / "localize.yaml"


def node_parameters(params: Path | None) -> dict:
    """The node's parameters from the shipped params file and ``params`` (later wins), as given."""
    import yaml

    merged: dict = {}
    for path in [default_params_file(), *([params] if params else [])]:
        for section, values in params_block(yaml.safe_load(Path(path).read_text()) or {}).items():
            merged.setdefault(section, {}).update(values if isinstance(values, dict) else {})
    return merged


def start_node(
    map_dir: Path,
    image_topic: str,
    params: Path | None,
    device: str,
    max_side: int,
    top_k: int,
    log: Path,
) -> subprocess.Popen:
    remap = "image/compressed" if image_topic.endswith("/compressed") else "image"
    args = [
        sys.executable,
        "-m",
        "ros2_netvlad.ros.node",
        "--ros-args",
        "--params-file",
        str(default_params_file()),
    ]
    if params:
        args += ["--params-file", str(params)]
    args += [
        "-p",
        f"node.map:={map_dir}",
        "-p",
        f"model.device:={device}",
        "-p",
        f"model.max_side:={max_side}",
        "-p",
        f"localizer.top_k:={top_k}",
        "-r",
        f"{remap}:={image_topic}",
    ]
    return subprocess.Popen(
        args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=dict(os.environ)
    )


def replay_evaluate(
    map_dir: Path,
    bag: Path,
    image_topic: str,
    poses: PoseLookup,
    out: Path,
    rate: float = 1.0,
    threshold: float = 25.0,
    params: Path | None = None,
    device: str = "auto",
    max_side: int = 0,
    top_k: int = 20,
    ready_timeout: float = 180.0,
) -> dict:

    out.mkdir(parents=True, exist_ok=True)
    database = MapDatabase.load(map_dir)
    truth = ground_truth(bag, image_topic, poses)
    stamps_by_log_time = header_stamps(bag, image_topic)
    node = start_node(map_dir, image_topic, params, device, max_side, top_k, out / "node.log")
    rclpy.init()
    published, received, tables, priors = {}, {}, {}, {}
    spinner = None
    try:
        recorder = rclpy.create_node("replay_eval_recorder")
        recorder.create_subscription(
            PointCloud2,
            f"{NODE}/loop_closures",
            lambda m: _record(m, received, tables, cloud_to_candidates),
            1000,
        )
        recorder.create_subscription(
            PoseWithCovarianceStamped,
            f"{NODE}/pose_prior",
            lambda m: priors.setdefault(_key(m), _prior_arrays(m)),
            1000,
        )
        replayer = BagReplayer(bag, [image_topic], rate=rate)
        replayer.on_publish = lambda t: published.setdefault(
            stamps_by_log_time[t], time.monotonic()
        )
        executor = SingleThreadedExecutor()
        executor.add_node(recorder)
        spinner = Spinner(executor)
        spinner.start()
        _wait_ready(node, replayer, recorder, ready_timeout, out / "node.log")
        started = time.monotonic()
        replayer.play()
        _drain(received, published, node)
        duration = time.monotonic() - started
    finally:
        node.send_signal(2)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
        if spinner is not None:
            spinner.stop()
        rclpy.try_shutdown()
    arguments = {
        "map": map_dir,
        "bag": bag,
        "image_topic": image_topic,
        "poses": poses,
        "rate": rate,
        "threshold": threshold,
        "params": params,
        "device": device,
        "max_side": max_side,
        "top_k": top_k,
    }
    write_resolved_config(out, arguments=arguments, node=node_parameters(params))
    return score_replay(
        database.positions(),
        truth,
        published,
        received,
        tables,
        priors,
        duration,
        threshold,
        out,
        bag.name,
    )


def _prior_arrays(msg: PoseWithCovarianceStamped) -> tuple[np.ndarray, np.ndarray]:
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


def _key(msg) -> int:
    return stamp_to_ns(msg.header.stamp)


def _record(msg, received, tables, decode) -> None:
    key = _key(msg)
    received.setdefault(key, time.monotonic())
    tables.setdefault(key, decode(msg).copy())


def _wait_ready(node, replayer, recorder, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise NetVLADError(
                f"the node exited with code {node.returncode}: {log.read_text()[-2000:]}"
            )
        if (
            replayer.subscribers_ready(0.1)
            and recorder.count_publishers(f"{NODE}/loop_closures") > 0
        ):
            return
    raise NetVLADError(f"the node did not come up within {timeout:.0f} s (see {log})")


def _drain(received: dict, published: dict, node, quiet: float = 3.0, limit: float = 120.0) -> None:
    """Waits until every published frame has an output, or none came for ``quiet`` seconds."""
    deadline, last_count, last_change = time.monotonic() + limit, -1, time.monotonic()
    while time.monotonic() < deadline and len(received) < len(published) and node.poll() is None:
        if len(received) != last_count:
            last_count, last_change = len(received), time.monotonic()
        elif time.monotonic() - last_change > quiet:
            return
        time.sleep(0.05)
