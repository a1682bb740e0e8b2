"""The camera's calibration and depth, beside its images: ``camera_info`` (sensor_msgs/CameraInfo,
the image_transport sibling of ``image``) gives the localizer its query camera, and ``depth`` (an
aligned sensor_msgs/Image, 16UC1 mm or 32FC1 m) gives keyframes grown online their keypoint
depths. Both are remappable; without them closures carry no geometry (geometry = 0)."""

from __future__ import annotations

import threading
from collections import deque

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from ros2_netvlad.camera import Camera, camera_from_info
from ros2_netvlad.errors import InputError
from ros2_netvlad.imaging import ImageDecodeError, message_to_depth
from ros2_netvlad.ros import conversions

DEPTH_TOLERANCE_NS = 20_000_000  # an aligned depth image carries its colour image's stamp


class CameraInputs:
    def __init__(self, node: Node, to_base: tuple[float, ...], depth: bool) -> None:
        self._node, self._to_base = node, to_base
        self._camera: Camera | None = None
        self._lock = threading.Lock()
        self._depths: deque[tuple[int, Image]] = deque(maxlen=30)
        self._warned: set[str] = set()
        self._depth = depth
        node.create_subscription(CameraInfo, "camera_info", self._on_info, qos_profile_sensor_data)
        if depth:
            node.create_subscription(Image, "depth", self._on_depth, qos_profile_sensor_data)

    def camera_for(self, height: int, width: int) -> Camera | None:
        """The calibrated camera if it describes images of this size (else None, said once)."""
        camera = self._camera
        if camera is not None and (camera.height, camera.width) != (height, width):
            self._warn_once(
                f"camera_info is {camera.width}x{camera.height} but images are {width}x{height}: "
                "closures get no geometry until they agree"
            )
            return None
        return camera

    def summary(self) -> str:
        """For /diagnostics: what closures' geometry can rest on now."""
        camera = self._camera
        if camera is None:
            return "no camera_info yet: closures carry no geometry"
        depth = f", depth images: {len(self._depths)} recent" if self._depth else ""
        return f"{camera.width}x{camera.height} {camera.distortion}, f {camera.focal:.1f} px{depth}"

    def depth_at(self, stamp_ns: int):
        """The depth image (metres) with this stamp, or None."""
        with self._lock:
            near = [m for s, m in self._depths if abs(s - stamp_ns) <= DEPTH_TOLERANCE_NS]
        if not near:
            return None
        try:
            return message_to_depth(near[-1])
        except ImageDecodeError as error:
            self._warn_once(f"depth image ignored: {error}")
            return None

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            camera = camera_from_info(msg, self._to_base)
        except InputError as error:
            self._warn_once(f"camera_info ignored: {error}")
            return
        if camera != self._camera and camera is not None:
            self._node.get_logger().info(
                f"camera: {camera.width}x{camera.height} {camera.distortion}, "
                f"f = {camera.focal:.1f} px"
            )
        self._camera = camera

    def _on_depth(self, msg: Image) -> None:
        with self._lock:
            self._depths.append((conversions.stamp_to_ns(msg.header.stamp), msg))

    def _warn_once(self, text: str) -> None:
        if text not in self._warned:
            self._warned.add(text)
            self._node.get_logger().warning(text)
