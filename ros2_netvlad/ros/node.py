"""The ``netvlad_localizer`` node: camera images in, loop-closure candidates and pose priors out.

It only translates and schedules: callbacks store the newest frame, one worker thread takes it
through the core ``Pipeline`` (describe → shortlist → verify → decide → grow) and publishes, so no
queue grows and superseded frames are counted as dropped.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque

import rclpy
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from ros2_netvlad.config_rules import ConfigError
from ros2_netvlad.errors import NetVLADError, say
from ros2_netvlad.imaging import ImageDecodeError, message_to_rgb
from ros2_netvlad.localization.localizer import Localizer
from ros2_netvlad.localization.odometry import OdometryBuffer
from ros2_netvlad.localization.pipeline import Pipeline
from ros2_netvlad.maps.opening import open_map
from ros2_netvlad.maps.saving import MapSaver
from ros2_netvlad.ros import conversions, params
from ros2_netvlad.ros.camera_inputs import CameraInputs
from ros2_netvlad.ros.health import Health
from ros2_netvlad.ros.mailbox import LatestFrame
from ros2_netvlad.ros.node_config import camera_to_base
from ros2_netvlad.ros.outputs import FrameOutputs
from ros2_netvlad.ros.shutdown import ShutdownSignals, Spinner, quiet_broken_streams
from ros2_netvlad.ros.status import NodeStatus


class LocalizerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("netvlad_localizer", **kwargs)
        self.configs = params.declare(self)
        config = self.node_config = self.configs["node"]
        growing = config.mode == "loop_closure"  # the one place the mode is looked at
        self.describer, self.database = open_map(
            config.map, self.configs["model"], self.configs["database"], config.force_map, growing
        )
        self.localizer = Localizer(
            self.database, self.configs["localizer"], self.configs["keyframes"]
        )
        self.pipeline = Pipeline(self.describer, self.localizer, growing)
        self.describer.warmup()
        summary = {**self.pipeline.summary(), "device": self.describer.hardware}
        params.declare_resolved(self, {k: summary[k] for k in ("device", "precision", "backend")})
        # loop-closure poses are odometry coordinates (REP 105 'odom'); a prebuilt map's are 'map'
        self._default_frame = "odom" if growing else "map"
        self.grows_map = growing and bool(config.map)
        self._mailbox, self._odometry, self.health = LatestFrame(), OdometryBuffer(), Health()
        self.saver = MapSaver(self.database, self.pipeline.lock, config.map)
        # per frame: (stamp ns, received, decoded, computed, published), monotonic seconds
        self.timings: deque[tuple[int, float, float, float, float]] = deque(maxlen=1000)
        self._last_warning: dict[str, float] = {}  # problem → when it was last logged
        self._setup_ros(growing)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="netvlad_worker", daemon=True)
        self._worker.start()
        if unknown := params.unknown_overrides(self):
            self.get_logger().warning(f"ignoring unknown parameter(s): {', '.join(unknown)}")
        self.get_logger().info(
            f"ready: {config.mode} mode, map {config.map or '(new)'} with {len(self.database)} "
            f"entries, {self.describer.device}, verification: {summary['verification']}"
        )

    def _setup_ros(self, growing: bool) -> None:
        images = qos_profile_sensor_data  # reliable: best effort drops big raw images' fragments
        if self.node_config.image_reliability == "reliable":
            images = QoSProfile(depth=images.depth, reliability=ReliabilityPolicy.RELIABLE)
        self._image_subscriptions = [
            self.create_subscription(Image, "image", self._on_image, images),
            self.create_subscription(CompressedImage, "image/compressed", self._on_image, images),
        ]
        self._outputs = FrameOutputs(self)
        self.cameras = CameraInputs(self, camera_to_base(self.node_config), depth=growing)
        self.create_subscription(Odometry, "odom", self._on_odometry, 50)  # keyframes, tracking
        if growing:
            self.create_service(Trigger, "~/save_map", self._on_save_map)
        self.add_on_set_parameters_callback(self._on_parameters)
        config = lambda: self.node_config  # noqa: E731 (it changes at run time)
        subscriptions = self._image_subscriptions
        self.status = NodeStatus(
            self, self.health, self.statistics, config, self.describer.hardware, subscriptions
        )
        # steady clock: with use_sim_time and no /clock, a ROS-time timer would never autosave
        self.create_timer(1.0, self._autosave, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # --- callbacks (short: store and return) ------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        self.status.image_arrived()
        self._mailbox.put((msg, time.monotonic()))

    def _on_odometry(self, msg: Odometry) -> None:
        stamp = conversions.stamp_to_ns(msg.header.stamp)
        self._odometry.add(stamp, conversions.pose_from_msg(msg.pose.pose), msg.header.frame_id)

    def _on_parameters(self, changed: list) -> SetParametersResult:
        """Every writable parameter takes effect here; read-only ones never reach this callback."""
        try:
            updated = {s: params.updated(c, s, changed) for s, c in self._live().items()}
        except ConfigError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.pipeline.reconfigure(updated["localizer"], updated["keyframes"], updated["database"])
        self.node_config = updated["node"]
        return SetParametersResult(successful=True)

    def _live(self) -> dict:  # the writable sections' configs in use now
        live = {"localizer": self.localizer.config, "keyframes": self.localizer.keyframes}
        return {**live, "database": self.database.config, "node": self.node_config}

    def _on_save_map(self, _: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            path = self.saver.save()
            response.success = True
            response.message = f"saved {len(self.database)} entries to {path}"
        except (OSError, NetVLADError) as error:
            response.success, response.message = False, f"save failed: {error}"
        return response

    # --- worker -----------------------------------------------------------------------------------
    def _work(self) -> None:
        while self._running:
            item = self._mailbox.take(timeout=0.2)
            if item is not None:
                try:
                    self._process(*item)
                except Exception as error:  # never let one frame kill the node
                    self._reject(f"processing failed: {type(error).__name__}: {error}")

    def _process(self, msg: Image | CompressedImage, received: float) -> None:
        try:
            rgb = message_to_rgb(msg)
        except ImageDecodeError as error:
            self._reject(str(error))
            return
        decoded, stamp_ns = time.monotonic(), conversions.stamp_to_ns(msg.header.stamp)
        pose = lambda: self._odometry.at(stamp_ns, self.node_config.odom_tolerance)  # noqa: E731
        depth = lambda: self.cameras.depth_at(stamp_ns)  # noqa: E731 (it may arrive after)
        frame, self.localizer.camera = self.pose_frame, self.cameras.camera_for(*rgb.shape[:2])
        result = self.pipeline.process(rgb, stamp_ns, pose, frame, depth).result
        computed = time.monotonic()
        self._outputs.publish(result, msg.header.stamp, frame)
        published = time.monotonic()
        self.health.frame_done(received, published)
        self.timings.append((stamp_ns, received, decoded, computed, published))

    @property
    def pose_frame(self) -> str:
        """node.map_frame, else the odometry's frame (loop-closure mode), else odom / map."""
        odometry = self._odometry.frame if self._default_frame == "odom" else ""
        return self.node_config.map_frame or odometry or self._default_frame

    def _reject(self, problem: str) -> None:
        self.health.rejected += 1
        now, key = time.monotonic(), problem.split(":")[0][:60]
        if now - self._last_warning.get(key, -1e9) >= self.node_config.warning_period:
            self._last_warning[key] = now
            self.get_logger().warning(f"rejected image: {problem}")

    # --- diagnostics, housekeeping and shutdown ---------------------------------------------------
    def statistics(self) -> dict[str, object]:
        health, now = self.health, time.monotonic()
        return {
            "rate_hz": f"{health.rate(now):.2f}",
            "latency_p50_ms": f"{health.latency_ms(50):.1f}",
            "latency_p95_ms": f"{health.latency_ms(95):.1f}",
            "processed": health.done,
            "dropped": self._mailbox.dropped,
            "rejected": health.rejected,
            "map_size": len(self.database),
            "mode": self.node_config.mode,
            "frame": self.pose_frame,
            "camera": self.cameras.summary(),
            **self.pipeline.summary(),
        }

    def _autosave(self) -> None:
        if self.grows_map and self.saver.due(time.monotonic(), self.node_config.autosave_period):
            try:
                path = self.saver.save()
                self.get_logger().info(f"autosaved {len(self.database)} entries to {path}")
            except (OSError, NetVLADError) as error:
                self.get_logger().error(f"autosave failed, the map in memory is kept: {error}")

    def close(self) -> bool:
        """Stops the worker and saves a grown map; False when that save failed (the reason is
        logged). Logs only while the ROS context is alive, i.e. before rclpy shuts down."""
        self._running = False
        self._worker.join(timeout=30.0)  # one inference at most; the save waits for the map lock
        if not self.grows_map or not self.saver.unsaved:
            return True
        try:
            path = self.saver.save()
        except (OSError, NetVLADError) as error:
            self.get_logger().error(f"could not save the map to {self.node_config.map}: {error}")
            return False
        self.get_logger().info(f"map saved to {path} ({len(self.database)} entries)")
        return True


def main(args: list[str] | None = None) -> int:
    """Runs the node until SIGINT/SIGTERM. Exit codes: 0 after a clean stop, 2 when it refuses to
    start (one line saying why), 1 when a grown map could not be saved."""
    signals = ShutdownSignals("netvlad_localizer").install()
    node = spinner = None
    code = 0
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = LocalizerNode()
        signals.finishing = "saving the map" if node.grows_map else ""
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spinner = Spinner(executor)
        signals.running()
        spinner.start()
        signals.wait(alive=spinner.is_alive)  # returns early if a callback crashed the executor
    except KeyboardInterrupt:  # a signal while starting: nothing to save yet
        pass
    except NetVLADError as error:
        say(f"netvlad_localizer: refusing to start: {error}\n")
        code = 2
    finally:
        signals.running()
        if node is not None:  # saves while callbacks (e.g. ~/save_map) still run, then stops them
            code = code or (0 if node.close() else 1)
        if spinner is not None:
            spinner.stop()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        signals.ignore()  # all saved: a late Ctrl-C must not turn a clean exit into -2 (SIGINT)
        quiet_broken_streams()
    return code


if __name__ == "__main__":
    sys.exit(main())
