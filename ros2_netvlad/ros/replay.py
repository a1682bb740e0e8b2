"""replay_bag: publish a rosbag2's topics through rclpy with the original timing.

For machines without the rosbag2 CLI. Messages go out as the bag's serialized bytes, so no
deserialization happens on the way.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
from pathlib import Path
from typing import Callable

import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock

from ros2_netvlad.errors import InputError, NetVLADError, say
from ros2_netvlad.ros import conversions
from ros2_netvlad.ros.shutdown import ShutdownSignals, quiet_broken_streams
from ros2_netvlad.sources.rosbag import BagError, open_bag


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' → the rclpy message class."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class BagReplayer(Node):
    def __init__(
        self,
        bag: Path,
        topics: list[str],
        rate: float = 1.0,
        start_offset: float = 0.0,
        loop: bool = False,
        clock: bool = False,
        reliable: bool = True,
        interrupted: Callable[[], bool] = lambda: False,
    ) -> None:
        """``interrupted``: polled while playing; true stops the replay (a signal's flag)."""
        super().__init__("replay_bag")
        if rate <= 0:
            raise InputError(f"--rate must be > 0, got {rate}")
        self.bag, self.topics, self.rate, self.offset_ns = (
            bag,
            topics,
            rate,
            int(start_offset * 1e9),
        )
        self.loop, self.published, self._interrupted = loop, 0, interrupted
        self.on_publish = None  # optional callback(bag timestamp ns) right after each publish
        qos = QoSProfile(
            depth=100,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        with open_bag(bag) as reader:
            connections = [c for c in reader.connections if not topics or c.topic in topics]
            missing = sorted(set(topics) - {c.topic for c in connections})
            if missing:
                raise BagError(
                    f"{bag}: no topics {', '.join(missing)}; the bag has "
                    f"{', '.join(sorted({c.topic for c in reader.connections}))}"
                )
            self.start_ns = reader.start_time
        self._topic_publishers = {
            c.topic: self.create_publisher(message_class(c.msgtype), c.topic, qos)
            for c in connections
        }
        self._clock = None
        if clock:
            self._clock = self.create_publisher(Clock, "/clock", 10)

    def subscribers_ready(self, timeout: float) -> bool:
        """Waits until every publisher has a subscriber (discovery), up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self._topic_publishers.values()):
                return True
            time.sleep(0.02)
        return False

    def stopped(self) -> bool:
        return self._interrupted() or not rclpy.ok()

    def play(self) -> int:
        """Publishes once (or forever with loop); returns the number of messages sent."""
        while True:
            self._play_once()
            if not self.loop or self.stopped():
                return self.published

    def flush(self, timeout: float = 2.0) -> None:
        """Waits until every reliable subscriber acknowledged what was published: a replayer that
        exits right after its last publish otherwise loses that message now and then."""
        for publisher in self._topic_publishers.values():
            if self.stopped():
                return
            publisher.wait_for_all_acked(Duration(seconds=timeout))

    def _play_once(self) -> None:
        first = self.start_ns + self.offset_ns
        began = time.monotonic()
        with open_bag(self.bag) as reader:
            connections = [c for c in reader.connections if c.topic in self._topic_publishers]
            for connection, timestamp, raw in reader.messages(connections=connections, start=first):
                due = began + (timestamp - first) / 1e9 / self.rate
                while not self.stopped() and time.monotonic() < due:  # short sleeps: a
                    time.sleep(min(0.05, max(0.0, due - time.monotonic())))  # stop is seen
                if self.stopped():
                    return
                if self._clock is not None:
                    self._publish_clock(timestamp)
                self._topic_publishers[connection.topic].publish(bytes(raw))
                self.published += 1
                if self.on_publish is not None:
                    self.on_publish(timestamp)

    def _publish_clock(self, timestamp: int) -> None:

        self._clock.publish(Clock(clock=conversions.ns_to_stamp(timestamp)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="replay_bag", description=__doc__)
    parser.add_argument("bag", type=Path)
    parser.add_argument("--topics", nargs="*", default=[], help="topics to publish (default: all)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument(
        "--start-offset", type=float, default=0.0, help="seconds into the bag to start"
    )
    parser.add_argument("--loop", action="store_true")
    parser.add_argument("--clock", action="store_true", help="publish /clock from the bag's time")
    parser.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        help="seconds to wait for a subscriber on every topic before playing",
    )
    parser.add_argument(
        "--best-effort", action="store_true", help="best-effort instead of reliable QoS"
    )
    args, ros_args = parser.parse_known_args(argv)
    # our handlers, not rclpy's: rclpy's shut the context down at once, and the final log line
    # then had nowhere to go ("Failed to publish log message to rosout")
    signals = ShutdownSignals("replay_bag").install()
    signals.running()
    rclpy.init(args=ros_args, signal_handler_options=SignalHandlerOptions.NO)
    code = 0
    try:
        node = BagReplayer(
            args.bag,
            args.topics,
            args.rate,
            args.start_offset,
            args.loop,
            args.clock,
            not args.best_effort,
            interrupted=lambda: signals.requested,
        )
        if args.wait_for_subscribers and not node.subscribers_ready(args.wait_for_subscribers):
            node.get_logger().warning("not every topic has a subscriber; playing anyway")
        began = time.monotonic()
        count = node.play()
        seconds = time.monotonic() - began
        node.flush()
        if signals.requested:  # 128 + the signal, as a shell reports a process it interrupted
            name = signal.Signals(signals.number).name
            message = f"interrupted ({name}) after {count} messages, {seconds:.1f} s"
            node.get_logger().warning(message)
            code = 128 + signals.number
        else:
            node.get_logger().info(f"published {count} messages in {seconds:.3f} s")
        node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 130
    except NetVLADError as error:
        say(f"replay_bag: {error}\n")
        code = 2
    finally:
        rclpy.try_shutdown()
        signals.ignore()
        quiet_broken_streams()
    return code


if __name__ == "__main__":
    sys.exit(main())
