"""The node's /diagnostics and its warning when images stop, on a steady clock: with use_sim_time
and no (or a stopped) /clock, ROS-time timers never fire."""

from __future__ import annotations

import time
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from ros2_netvlad.ros import conversions, topics
from ros2_netvlad.ros.health import Health, SilenceWatch


class NodeStatus:
    """``values()`` gives the node's key/values; ``config()`` its live NodeConfig."""

    def __init__(
        self,
        node: Node,
        health: Health,
        values: Callable[[], dict],
        config: Callable,
        hardware: str,
        subscriptions: list,
    ) -> None:
        self.node, self.health, self._values, self._config = node, health, values, config
        self._hardware, self._subscriptions = hardware, subscriptions
        self.silence = SilenceWatch(config().image_timeout, time.monotonic())
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        node.create_timer(config().diagnostics_period, self.publish, clock=steady)
        node.create_timer(1.0, self._watch_silence, clock=steady)

    def image_arrived(self) -> None:
        self.silence.image(time.monotonic())
        self.health.image_seen = True

    def publish(self) -> None:
        last = self.silence.last_image if self.health.image_seen and self.health.done else None
        level, message = Health.level(time.monotonic(), last, self._config().image_timeout)
        msg = conversions.diagnostics(
            f"{self.node.get_fully_qualified_name()}: place recognition",
            self._hardware,
            self._values(),
            getattr(DiagnosticStatus, level),
            message,
            self.node.get_clock().now().to_msg(),
        )
        self._publisher.publish(msg)

    def _watch_silence(self) -> None:
        now = time.monotonic()
        self.silence.timeout = self._config().image_timeout
        if self.silence.due(now):
            silent = now - self.silence.last_image
            report = topics.silence_report(self.node, self._subscriptions, silent)
            self.node.get_logger().warning(report)
