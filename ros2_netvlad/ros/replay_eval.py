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
from typing import Callable

import numpy as np
import rclpy
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2

from ros2_netvlad.camera import camera_info_topic
from ros2_netvlad.config_files import params_block, write_resolved_config
from ros2_netvlad.errors import NetVLADError
from ros2_netvlad.evaluation.replay import ground_truth, header_stamps, score_replay
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.ros.conversions import cloud_to_candidates, stamp_to_ns
from ros2_netvlad.ros.replay import BagReplayer
from ros2_netvlad.ros.shutdown import Spinner
from ros2_netvlad.sources.rosbag import PoseLookup, open_bag

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
    source_tree = Path(__file__).resolve().parents[2] / "config" / "localize.yaml"
    if not source_tree.is_file():
        raise NetVLADError(
            "config/localize.yaml not found: ros2_netvlad's share directory is not on "
            "AMENT_PREFIX_PATH (source the install's setup file, or in a venv export "
            "AMENT_PREFIX_PATH=<the venv>)"
        )
    return source_tree


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
    extra: list[str] = (),
) -> subprocess.Popen:
    """The node as its own process: the shipped params file, ``params``, then these overrides
    (``extra``: more ``-p``/``-r`` ros-args)."""
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
        "-r",
        f"camera_info:={camera_info_topic(image_topic)}",
        *extra,
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
    backend: str = "torch",
    backend_model: str = "",
    odom_topic: str = "/odom",
) -> dict:
    """Replays ``bag`` through a node of its own on ``map_dir`` and scores what it published.
    The bag's ``odom_topic`` (if it has one) is played too: the node tracks revisits with it."""
    arguments = dict(locals())  # the call as given, for config.yaml
    out.mkdir(parents=True, exist_ok=True)
    truth = ground_truth(bag, image_topic, poses)
    extra = ["-p", f"model.backend:={backend}", "-r", f"odom:={odom_topic}"]
    extra += ["-p", f"model.backend_model:={backend_model}"] if backend_model else []
    node = start_node(
        map_dir, image_topic, params, device, max_side, top_k, out / "node.log", extra
    )
    recording = Recording(header_stamps(bag, image_topic))
    try:
        topics = [image_topic, *recorded(bag, [camera_info_topic(image_topic), odom_topic])]
        duration = _replay(node, recording, bag, topics, rate, ready_timeout, out / "node.log")
    finally:
        node.send_signal(2)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
    write_resolved_config(out, arguments=arguments, node=node_parameters(params))
    positions = MapDatabase.load(map_dir).positions()
    return score_replay(positions, truth, *recording.tables(), duration, threshold, out, bag.name)


class Recording:
    """What the replay published and the node answered, keyed by image header stamp."""

    def __init__(self, stamps_by_log_time: dict[int, int]) -> None:
        self._stamps = stamps_by_log_time
        self.published, self.received, self.candidates, self.priors = {}, {}, {}, {}

    def on_publish(self, log_time: int) -> None:
        if log_time in self._stamps:  # an image (not camera_info or odometry)
            self.published.setdefault(self._stamps[log_time], time.monotonic())

    def on_candidates(self, msg: PointCloud2) -> None:
        key = stamp_to_ns(msg.header.stamp)
        self.received.setdefault(key, time.monotonic())
        self.candidates.setdefault(key, cloud_to_candidates(msg).copy())

    def on_prior(self, msg: PoseWithCovarianceStamped) -> None:
        self.priors.setdefault(stamp_to_ns(msg.header.stamp), _prior_arrays(msg))

    def tables(self) -> tuple[dict, dict, dict, dict]:
        return self.published, self.received, self.candidates, self.priors


def _replay(node, recording: Recording, bag, topics, rate, ready_timeout, log) -> float:
    """Plays the bag once the node is up, waits for its last answers; returns the play time."""

    def subscribe(recorder) -> None:
        recorder.create_subscription(
            PointCloud2, f"{NODE}/loop_closures", recording.on_candidates, 1000
        )
        recorder.create_subscription(
            PoseWithCovarianceStamped, f"{NODE}/pose_prior", recording.on_prior, 1000
        )

    return replay_recorded(node, recording, bag, topics, rate, ready_timeout, log, subscribe)


def recorded(bag: Path, topics: list[str]) -> list[str]:
    """Those of ``topics`` the bag has (camera_info and depth are optional)."""
    with open_bag(bag) as reader:
        present = {c.topic for c in reader.connections}
    return [t for t in topics if t and t in present]


def replay_recorded(
    node: subprocess.Popen,
    recording: Recording,
    bag: Path,
    topics: list[str],
    rate: float,
    ready_timeout: float,
    log: Path,
    subscribe: Callable[[Node], None],
) -> float:
    """Plays ``topics`` of the bag to the node once it is up, while a recorder node (its
    subscriptions made by ``subscribe``) records the answers; waits for the last ones. Returns the
    play time."""
    rclpy.init()
    spinner = None
    try:
        recorder = rclpy.create_node("replay_eval_recorder")
        subscribe(recorder)
        replayer = BagReplayer(bag, topics, rate=rate)
        replayer.on_publish = recording.on_publish
        executor = SingleThreadedExecutor()
        executor.add_node(recorder)
        spinner = Spinner(executor)
        spinner.start()
        _wait_ready(node, replayer, recorder, ready_timeout, log)
        started = time.monotonic()
        replayer.play()
        _drain(recording.received, recording.published, node)
        return time.monotonic() - started
    finally:
        if spinner is not None:
            spinner.stop()
        rclpy.try_shutdown()


def _prior_arrays(msg: PoseWithCovarianceStamped) -> tuple[np.ndarray, np.ndarray]:
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


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
