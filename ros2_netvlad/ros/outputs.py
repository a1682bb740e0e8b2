"""What the node publishes per frame: the candidate table (always, empty when nothing passed),
the pose prior when there is one, and markers only while someone views them."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from ros2_netvlad.localization.localizer import Result
from ros2_netvlad.ros import conversions


class FrameOutputs:
    def __init__(self, node: Node) -> None:
        self._candidates = node.create_publisher(PointCloud2, "~/loop_closures", 10)
        self._prior = node.create_publisher(PoseWithCovarianceStamped, "~/pose_prior", 10)
        self._markers = node.create_publisher(MarkerArray, "~/markers", 10)

    def publish(self, result: Result, stamp: Time, frame: str) -> None:
        self._candidates.publish(conversions.candidates_to_cloud(result.candidates, stamp, frame))
        if result.pose_prior is not None:
            self._prior.publish(conversions.prior_to_msg(result.pose_prior, stamp, frame))
        if self._markers.get_subscription_count():  # building markers costs ~1 ms
            self._markers.publish(
                conversions.markers(result.candidates, result.pose_prior, stamp, frame)
            )
