"""A drive through the live node in ``loop_closure`` mode, its ``~/loop_closures`` recorded into a
bag: what a SLAM back-end would have received (the input of ``slam_eval``).

Starts netvlad_localizer on a new map (it grows the map from the replayed odometry), replays the
bag's image and odometry topics, writes every loop-closure message, byte for byte as published,
into ``out/loop_closures`` (rosbag2, mcap), and stops the node cleanly (it saves its map).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from rclpy.serialization import deserialize_message
from sensor_msgs.msg import PointCloud2

from ros2_netvlad.camera import camera_info_topic
from ros2_netvlad.evaluation.replay import header_stamps
from ros2_netvlad.ros.replay_eval import NODE, Recording, recorded, replay_recorded, start_node
from ros2_netvlad.sources.rosbag import BagWriter

CLOSURES_TOPIC = f"{NODE}/loop_closures"


def replay_loop_closure(
    bag: Path,
    weights: Path,
    out: Path,
    image_topic: str,
    odom_topic: str,
    exclusion_window: float = 10.0,
    rate: float = 1.0,
    params: Path | None = None,
    device: str = "auto",
    ready_timeout: float = 180.0,
    depth_topic: str = "",
    camera_to_base: str = "",
) -> Path:
    """Returns the bag of recorded loop closures (topic ``/netvlad_localizer/loop_closures``).
    The bag's CameraInfo (the image topic's sibling) and ``depth_topic``, where recorded, are
    replayed too: the closures then carry relative poses (``camera_to_base``: the camera on the
    robot, as node.camera_to_base)."""
    out.mkdir(parents=True, exist_ok=True)
    extra = [
        "-p",
        "node.mode:=loop_closure",
        "-p",
        f"model.weights:={weights}",
        "-p",
        f"localizer.exclusion_window:={exclusion_window}",
        "-r",
        f"odom:={odom_topic}",
    ]
    if camera_to_base:
        extra += ["-p", f"node.camera_to_base:={camera_to_base}"]
    if depth_topic:
        extra += ["-r", f"depth:={depth_topic}"]
    log = out / "node.log"
    node = start_node(out / "online_map", image_topic, params, device, 0, 5, log, extra)
    recording = Recording(header_stamps(bag, image_topic))
    target = out / "loop_closures"
    try:
        with BagWriter(target) as writer:
            optional = recorded(bag, [camera_info_topic(image_topic), depth_topic])
            topics = [image_topic, odom_topic, *optional]
            _replay(node, log, recording, writer, bag, topics, rate, ready_timeout)
    finally:
        node.send_signal(2)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
    return target


def _replay(node, log, recording: Recording, writer: BagWriter, bag, topics, rate, timeout):
    def on_closures(cdr: bytes) -> None:
        writer.write_raw(CLOSURES_TOPIC, "sensor_msgs/msg/PointCloud2", cdr, time.time_ns())
        recording.on_candidates(deserialize_message(cdr, PointCloud2))

    def subscribe(recorder) -> None:  # raw: the bytes as published go into the bag
        recorder.create_subscription(PointCloud2, CLOSURES_TOPIC, on_closures, 1000, raw=True)

    replay_recorded(node, recording, bag, topics, rate, timeout, log, subscribe)
