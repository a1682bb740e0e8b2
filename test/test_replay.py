"""replay_bag: a bag written here arrives complete, in order and on time, through real rclpy."""

import re
import signal
import subprocess
import time

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from ros2_netvlad.demo import messages
from ros2_netvlad.geometry import Pose
from ros2_netvlad.sources.rosbag import BagWriter
from rosutil import executable, ros_session, spin_until

PERIOD_NS = 50_000_000  # 20 Hz
COUNT = 40


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    yield from ros_session(tmp_path_factory.mktemp("ros_log"), "replay_test_client")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_replay_is_complete_ordered_and_timed(ros, tmp_path, storage):
    node, executor = ros
    bag = tmp_path / "bag"
    with BagWriter(bag, storage) as writer:
        for i in range(COUNT):
            t = 1_000_000_000 + i * PERIOD_NS
            writer.write("/cam", messages.image(np.full((4, 4, 3), i, np.uint8), t), t)
            writer.write("/odom", messages.odometry(Pose((float(i), 0, 0)), t), t)
    received, arrivals, clock = [], [], []
    topic = f"/cam_{storage}"
    node.create_subscription(
        Image,
        topic,
        lambda m: (received.append(int(m.data[0])), arrivals.append(time.monotonic())),
        100,
    )
    odometry = []
    node.create_subscription(
        Odometry, "/odom", lambda m: odometry.append(m.pose.pose.position.x), 100
    )
    node.create_subscription(Clock, "/clock", clock.append, 100)
    process = subprocess.Popen(
        [
            executable("replay_bag"),
            str(bag),
            "--topics",
            "/cam",
            "/odom",
            "--clock",
            "--wait-for-subscribers",
            "10",
            "--ros-args",
            "-r",
            f"/cam:={topic}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        spin_until(
            executor,
            lambda: len(received) == COUNT and len(odometry) >= COUNT,
            30,
            "the replayed messages",
        )
        assert process.wait(15) == 0, process.communicate()[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert received == list(range(COUNT)), "images must arrive complete and in order"
    assert odometry[:COUNT] == [float(i) for i in range(COUNT)]
    # Paced like the bag. Bounds are one-sided and wide: a loaded machine may deliver late or in
    # bursts, but a replayer that ignores the bag's timing (all at once, or at the wrong rate)
    # fails.
    nominal = (COUNT - 1) * PERIOD_NS / 1e9
    assert 0.5 * PERIOD_NS / 1e9 < np.median(np.diff(arrivals)) < 1.5 * PERIOD_NS / 1e9
    assert 0.8 * nominal < arrivals[-1] - arrivals[0] < nominal + 2.0
    last = (
        1_000_000_000 + (COUNT - 1) * PERIOD_NS
    )  # /clock follows the bag's time to its last message
    spin_until(
        executor,
        lambda: clock and clock[-1].clock.sec * 10**9 + clock[-1].clock.nanosec == last,
        5,
        "/clock",
    )


def test_replay_rate_and_missing_topic(ros, tmp_path):
    bag = tmp_path / "bag"
    with BagWriter(bag, "mcap") as writer:
        for i in range(10):
            writer.write("/odom", messages.odometry(Pose(), i * 100_000_000), i * 100_000_000)
    fast = subprocess.run(
        [executable("replay_bag"), str(bag), "--rate", "10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fast.returncode == 0, fast.stderr
    played = float(
        re.search(r"published 10 messages in ([0-9.]+) s", fast.stderr + fast.stdout).group(1)
    )
    assert 0.08 < played < 0.45, (
        f"0.9 s of bag at rate 10 took {played} s"
    )  # rate 1 would take 0.9 s
    missing = subprocess.run(
        [executable("replay_bag"), str(bag), "--topics", "/nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 2 and "no topics /nope; the bag has /odom" in missing.stderr


def test_replay_start_offset_skips_the_beginning(ros, tmp_path):
    node, executor = ros
    bag = tmp_path / "bag"
    with BagWriter(bag, "sqlite3") as writer:
        for i in range(10):
            writer.write(
                "/pose_offset",
                messages.odometry(Pose((float(i), 0, 0)), i * 100_000_000),
                i * 100_000_000,
            )
    got = []
    node.create_subscription(
        Odometry, "/pose_offset", lambda m: got.append(m.pose.pose.position.x), 100
    )
    process = subprocess.Popen(
        [
            executable("replay_bag"),
            str(bag),
            "--start-offset",
            "0.5",
            "--wait-for-subscribers",
            "10",
        ]
    )
    try:
        spin_until(executor, lambda: len(got) >= 5, 30, "the replayed tail of the bag")
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert got == [5.0, 6.0, 7.0, 8.0, 9.0]


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_replay_says_so_and_exits_128_plus_the_signal(ros, tmp_path, number):
    node, executor = ros
    bag = tmp_path / "bag"
    with BagWriter(bag, "mcap") as writer:
        for i in range(100):  # ten seconds of odometry
            writer.write("/odom_long", messages.odometry(Pose(), i * 100_000_000), i * 100_000_000)
    got = []
    node.create_subscription(Odometry, "/odom_long", lambda m: got.append(1), 100)
    process = subprocess.Popen(
        [executable("replay_bag"), str(bag), "--wait-for-subscribers", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        spin_until(executor, lambda: len(got) >= 3, 30, "the replay to start")
        process.send_signal(number)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + number, output
    assert f"interrupted ({signal.Signals(number).name}) after" in output, output
    assert "Failed to publish log message" not in output and "Traceback" not in output, output
