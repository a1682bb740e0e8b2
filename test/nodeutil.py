"""Shared by the node tests: a small map of the demo world and a client that talks to the node."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from ros2_netvlad.demo import world
from ros2_netvlad.demo.run import map_of_bag
from ros2_netvlad.geometry import Pose
from ros2_netvlad.ros.conversions import (
    cloud_to_candidates,
    ns_to_stamp,
    pose_msg,
    rgb_to_compressed,
    rgb_to_image,
)
from rosutil import spin_until

PLACES = world.places(5)
NS = "/robot/netvlad_localizer"


class Client:
    """Publishes images, collects the node's outputs keyed by image stamp."""

    def __init__(self, ros, namespace=NS):
        self.node, self.executor = ros
        self.raw = self.node.create_publisher(Image, "/cam", 10)
        self.compressed = self.node.create_publisher(CompressedImage, "/cam/compressed", 10)
        self.odom = self.node.create_publisher(Odometry, "/odom", 10)
        self.clouds, self.priors, self.diagnostics = {}, {}, []
        self._subs = [
            self.node.create_subscription(
                PointCloud2,
                f"{namespace}/loop_closures",
                lambda m: self.clouds.__setitem__(self.key(m), m),
                50,
            ),
            self.node.create_subscription(
                PoseWithCovarianceStamped,
                f"{namespace}/pose_prior",
                lambda m: self.priors.__setitem__(self.key(m), m),
                50,
            ),
            self.node.create_subscription(
                DiagnosticArray, "/diagnostics", self.diagnostics.append, 50
            ),
        ]
        self.namespace = namespace

    @staticmethod
    def key(msg) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def wait_ready(self, process, timeout=90.0):
        def ready():
            assert process.poll() is None, f"node exited with {process.returncode}"
            return (
                self.raw.get_subscription_count() > 0
                and self.compressed.get_subscription_count() > 0
                and self.node.count_publishers(f"{self.namespace}/loop_closures") > 0
            )

        spin_until(self.executor, ready, timeout, "the node to come up")

    def send(self, rgb, stamp_ns, compressed=False, timeout=30.0) -> PointCloud2:
        stamp = ns_to_stamp(stamp_ns)
        msg = (
            rgb_to_compressed(rgb, stamp)
            if compressed
            else rgb_to_image(rgb, stamp, encoding="bgr8")
        )
        publisher = self.compressed if compressed else self.raw
        deadline = time.monotonic() + timeout
        while stamp_ns not in self.clouds:  # best-effort transport: resend until processed
            if time.monotonic() > deadline:
                pytest.fail(f"no result for the image stamped {stamp_ns} within {timeout} s")
            publisher.publish(msg)
            resend_at = time.monotonic() + 2.0
            while stamp_ns not in self.clouds and time.monotonic() < resend_at:
                self.executor.spin_once(timeout_sec=0.05)
        return self.clouds[stamp_ns]

    def publish_bad(self, msg):
        (self.compressed if isinstance(msg, CompressedImage) else self.raw).publish(msg)

    def latest_status(self) -> dict[str, str]:
        mine = [s for d in self.diagnostics for s in d.status if "netvlad_localizer" in s.name]
        return {kv.key: kv.value for kv in mine[-1].values} if mine else {}


def query_view(place, seed):
    return world.render_view(place, np.random.default_rng(seed), changed=True)


def make_small_map(root: Path) -> Path:
    """Five demo places, EfficientNet-Lite0 (real ImageNet weights) with K=8 fitted on the map."""
    world.write_traversal(root / "bag", PLACES, seed=1)
    return map_of_bag(root / "map", root / "bag", min_distance=5.0)


def publish_odometry(client: Client, route: list[tuple[object, int]], frame: str = "map") -> None:
    """The odometry of a whole drive (reliable QoS: the node keeps it), placed at the route's
    places, in ``frame``."""
    for place, stamp in route:
        odom = Odometry()
        odom.header.stamp, odom.header.frame_id = ns_to_stamp(stamp), frame
        odom.pose.pose = pose_msg(
            world.place_position(place.index, len(PLACES)), Pose().orientation
        )
        client.odom.publish(odom)
    end = time.monotonic() + 1.0  # let the reliable odometry arrive before the first image
    while time.monotonic() < end:
        client.executor.spin_once(timeout_sec=0.05)


def drive(client: Client, route: list[tuple[object, int]], seed: int = 200) -> list[np.ndarray]:
    """Sends one view per route stop and returns the candidate tables, in order."""
    return [
        cloud_to_candidates(client.send(query_view(place, seed + n), stamp))
        for n, (place, stamp) in enumerate(route)
    ]


def grow(ros, process, count: int = 3, frame: str = "map") -> Client:
    """Drives past ``count`` places so a loop_closure node adds that many keyframes (odometry in
    ``frame``); returns when all are in. ``process``: anything with poll()."""
    client = Client(ros)
    client.wait_ready(process)
    spin_until(
        client.executor, lambda: client.odom.get_subscription_count() > 0, 30, "odom subscription"
    )
    route = [(place, (i + 1) * 1_000_000_000) for i, place in enumerate(PLACES[:count])]
    publish_odometry(client, route, frame)
    drive(client, route)  # each cloud comes back after its keyframe was added
    return client
