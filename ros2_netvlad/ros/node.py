"""The ``netvlad_localizer`` node: camera images in, loop-closure candidates and pose priors out.

Callbacks only store the newest frame; one worker thread takes it, runs Describer → Localizer and
publishes, so no queue grows and superseded frames are counted as dropped.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from ros2_netvlad.config import ConfigError
from ros2_netvlad.errors import InputError, NetVLADError, say
from ros2_netvlad.geometry import Pose, Trajectory
from ros2_netvlad.imaging import ImageDecodeError, message_to_rgb
from ros2_netvlad.localization.localizer import Localizer
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.maps.opening import open_map
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.resize import resize_rule_text
from ros2_netvlad.ros import conversions, params, topics
from ros2_netvlad.ros.health import Health
from ros2_netvlad.ros.mailbox import LatestFrame
from ros2_netvlad.ros.shutdown import ShutdownSignals, Spinner, quiet_broken_streams


class LocalizerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("netvlad_localizer", **kwargs)
        self.configs = params.declare(self)
        self.node_config = self.configs["node"]
        self.describer, self.database = self._open_model_and_map()
        self.localizer = Localizer(
            self.database, self.configs["localizer"], self.configs["keyframes"]
        )
        self.describer.warmup()
        describer = self.describer
        params.declare_resolved(
            self,
            {
                "device": describer.hardware,
                "precision": str(describer.precision),
                "backend": describer.backend_note,
            },
        )
        self._mailbox, self._odometry = LatestFrame(), deque(maxlen=400)
        self.health, self._odom_frame = Health(), ""
        # per frame: (stamp ns, received, decoded, descriptor + search done, published), monotonic
        # seconds
        self.timings: deque[tuple[int, float, float, float, float]] = deque(maxlen=1000)
        self.processed = self.rejected = 0
        self._last_warning: dict[str, float] = {}
        self._map_lock = threading.Lock()  # the worker grows the map while ~/save_map writes it
        self._saved_size, self._saved_at = len(self.database), time.monotonic()
        self._last_image = self._silence_warned = time.monotonic()
        self._image_seen = False
        self._setup_ros()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="netvlad_worker", daemon=True)
        self._worker.start()
        unknown = params.unknown_overrides(self)
        if unknown:
            self.get_logger().warning(f"ignoring unknown parameter(s): {', '.join(unknown)}")
        self.get_logger().info(
            f"ready: {self.node_config.mode} mode, map {self.node_config.map or '(new)'} "
            f"with {len(self.database)} entries, {self.describer.device}, verification: "
            f"{self._verification_text()}"
        )

    # --- setup ------------------------------------------------------------------------------------
    def _open_model_and_map(self) -> tuple[Describer, MapDatabase]:
        config = self.node_config
        return open_map(
            config.map,
            self.configs["model"],
            self.configs["database"],
            config.force_map,
            create=config.mode == "loop_closure",
        )

    def _setup_ros(self) -> None:
        images = qos_profile_sensor_data
        if (
            self.node_config.image_reliability == "reliable"
        ):  # best effort drops fragments of big raw images
            images = QoSProfile(
                depth=qos_profile_sensor_data.depth, reliability=ReliabilityPolicy.RELIABLE
            )
        self._image_subscriptions = [
            self.create_subscription(Image, "image", self._on_image, images),
            self.create_subscription(CompressedImage, "image/compressed", self._on_image, images),
        ]
        self._candidates_pub = self.create_publisher(PointCloud2, "~/loop_closures", 10)
        self._prior_pub = self.create_publisher(PoseWithCovarianceStamped, "~/pose_prior", 10)
        self._markers_pub = self.create_publisher(MarkerArray, "~/markers", 10)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if self.node_config.mode == "loop_closure":
            self.create_subscription(Odometry, "odom", self._on_odometry, 50)
            self.create_service(Trigger, "~/save_map", self._on_save_map)
        self.add_on_set_parameters_callback(self._on_parameters)
        # housekeeping runs on a steady clock: with use_sim_time and no (or a stopped) /clock,
        # ROS-time timers never fire, and diagnostics, silence warnings and autosave would stop
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        period = self.node_config.diagnostics_period
        self.create_timer(period, self._publish_diagnostics, clock=steady)
        self.create_timer(1.0, self._housekeeping, clock=steady)

    # --- callbacks (short: store and return) ------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._last_image, self._image_seen = time.monotonic(), True
        self._mailbox.put((msg, self._last_image))

    def _on_odometry(self, msg: Odometry) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        self._odom_frame = msg.header.frame_id or self._odom_frame
        self._odometry.append(
            (conversions.stamp_to_ns(msg.header.stamp), Pose((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)))
        )

    def _on_parameters(self, changed: list) -> SetParametersResult:
        """Every writable parameter takes effect here; read-only ones never reach this callback."""
        try:
            localizer = params.updated(self.localizer.config, "localizer", changed)
            keyframes = params.updated(self.localizer.keyframes, "keyframes", changed)
            database = params.updated(self.database.config, "database", changed)
            node = params.updated(self.node_config, "node", changed)
        except ConfigError as error:
            return SetParametersResult(successful=False, reason=str(error))
        with self._map_lock:  # the worker may be searching right now
            self.localizer.reconfigure(localizer, keyframes)
            self.database.reconfigure(database)
        self.node_config = node
        return SetParametersResult(successful=True)

    def _on_save_map(
        self, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        try:
            path = self.save_map()
            response.success, response.message = (
                True,
                f"saved {len(self.database)} entries to {path}",
            )
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
        decoded = time.monotonic()
        stamp_ns = conversions.stamp_to_ns(msg.header.stamp)
        descriptor = self.describer(rgb)
        needed = self.localizer.verifies or self.node_config.mode == "loop_closure"
        features = self.localizer.local_features(rgb) if needed else None  # outside the lock
        with self._map_lock:  # the search and the stored features' read only
            shortlist = self.localizer.shortlist(descriptor, stamp_ns)
        result = self.localizer.decide(shortlist, features)
        if self.node_config.mode == "loop_closure":
            with self._map_lock:
                self._grow_map(descriptor, stamp_ns, features)
        computed = time.monotonic()
        self._publish(result, msg.header.stamp)
        published = time.monotonic()
        self.health.frame_done(received, published)
        self.timings.append((stamp_ns, received, decoded, computed, published))
        self.processed += 1

    def _grow_map(self, descriptor: np.ndarray, stamp_ns: int, features) -> None:
        pose = self._odometry_at(stamp_ns)
        if pose is not None:
            self.localizer.add_keyframe(descriptor, pose, stamp_ns, self.pose_frame, features)

    def _odometry_at(self, stamp_ns: int) -> Pose | None:
        """The odometry pose at an image's stamp, interpolated like every other pose source."""
        samples = list(self._odometry)
        if not samples:
            return None
        stamps = np.array([stamp for stamp, _ in samples], dtype=np.int64)
        positions = np.array([pose.position for _, pose in samples])
        orientations = np.array([pose.orientation for _, pose in samples])
        tolerance = int(self.node_config.odom_tolerance * 1e9)
        return Trajectory(stamps, positions, orientations).at(stamp_ns, tolerance)

    @property
    def pose_frame(self) -> str:
        """The frame published poses are in: node.map_frame, else the odometry's frame in
        loop_closure mode (its poses are odometry coordinates, REP 105 'odom') and 'map' in
        localize mode."""
        if self.node_config.map_frame:
            return self.node_config.map_frame
        if self.node_config.mode == "loop_closure":
            return self._odom_frame or "odom"
        return "map"

    def _publish(self, result, stamp) -> None:
        frame = self.pose_frame
        self._candidates_pub.publish(
            conversions.candidates_to_cloud(result.candidates, stamp, frame)
        )
        if result.pose_prior is not None:
            self._prior_pub.publish(conversions.prior_to_msg(result.pose_prior, stamp, frame))
        if (
            self._markers_pub.get_subscription_count()
        ):  # building markers costs ~1 ms; only for viewers
            self._markers_pub.publish(
                conversions.markers(result.candidates, result.pose_prior, stamp, frame)
            )

    def _reject(self, problem: str) -> None:
        self.rejected += 1
        now, key = time.monotonic(), problem.split(":")[0][:60]
        if now - self._last_warning.get(key, -1e9) >= self.node_config.warning_period:
            self._last_warning[key] = now
            self.get_logger().warning(f"rejected image: {problem}")

    # --- diagnostics and shutdown
    # -------------------------------------------------------------------
    def statistics(self) -> dict[str, object]:
        model, health = self.describer.model, self.health
        return {
            "rate_hz": f"{health.rate(time.monotonic()):.2f}",
            "latency_p50_ms": f"{health.latency_ms(50):.1f}",
            "latency_p95_ms": f"{health.latency_ms(95):.1f}",
            "processed": self.processed,
            "dropped": self._mailbox.dropped,
            "rejected": self.rejected,
            "map_size": len(self.database),
            "device": str(self.describer.device),
            "precision": str(self.describer.precision),
            "backend": self.describer.backend_note,
            "mode": self.node_config.mode,
            "frame": self.pose_frame,
            "resize": resize_rule_text(self.describer.config),
            "verification": self._verification_text(),
            "model": f"{model.arch.backbone} K={model.arch.num_clusters} {model.output_dim}-D "
            f"{self.database.fingerprint}",
        }

    def _verification_text(self) -> str:
        features, config = self.localizer.features, self.localizer.config
        if features is None:
            return "off (localizer.verification none, or the map stores no local features)"
        return (
            f"{features.method} ({features.max_features} features), top {config.rerank_top_n} "
            f"re-ranked, verified at >= {config.min_inliers} inliers"
        )

    def _publish_diagnostics(self) -> None:
        values = self.statistics()
        last = self._last_image if self._image_seen and self.processed else None
        level, message = Health.level(time.monotonic(), last, self.node_config.image_timeout)
        self._diagnostics_pub.publish(
            conversions.diagnostics(
                f"{self.get_fully_qualified_name()}: place recognition",
                self.describer.hardware,
                values,
                getattr(DiagnosticStatus, level),
                message,
                self.get_clock().now().to_msg(),
            )
        )

    def _housekeeping(self) -> None:
        now, timeout = time.monotonic(), self.node_config.image_timeout
        first = self._silence_warned <= self._last_image  # not yet warned about this silence
        # warn after `timeout` seconds of silence, then at most every 30 s while it lasts
        if (
            timeout
            and now - self._last_image >= timeout
            and (first or now - self._silence_warned >= max(timeout, 30))
        ):
            self._silence_warned = now
            self.get_logger().warning(
                topics.silence_report(self, self._image_subscriptions, now - self._last_image)
            )
        period = self.node_config.autosave_period
        if (
            period
            and self.grows_map
            and now - self._saved_at >= period
            and len(self.database) != self._saved_size
        ):
            try:
                self.get_logger().info(
                    f"autosaved {len(self.database)} entries to {self.save_map()}"
                )
            except (OSError, NetVLADError) as error:
                self.get_logger().error(f"autosave failed, the map in memory is kept: {error}")

    @property
    def grows_map(self) -> bool:
        return self.node_config.mode == "loop_closure" and bool(self.node_config.map)

    def save_map(self) -> Path:
        if not self.node_config.map:
            raise InputError("node.map is empty: nowhere to save")
        with self._map_lock:
            size, path = len(self.database), self.database.save(self.node_config.map)
        self._saved_size, self._saved_at = size, time.monotonic()
        return path

    def close(self) -> bool:
        """Stops the worker and saves a grown map; False when that save failed (the reason is
        logged).
        Logs only while the ROS context is alive, i.e. before rclpy shuts down."""
        self._running = False
        self._worker.join(
            timeout=30.0
        )  # one inference at most; the save below waits for the map lock anyway
        if not self.grows_map or (
            len(self.database) == self._saved_size and Path(self.node_config.map).is_dir()
        ):
            return True
        try:
            path = self.save_map()
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
