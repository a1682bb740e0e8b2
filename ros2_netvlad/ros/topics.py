"""Explaining silence: what the ROS graph says when no image arrives on the node's subscriptions."""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from rclpy.subscription import Subscription


def _type_name(subscription: Subscription) -> str:
    cls = subscription.msg_type
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


def silence_report(node: Node, subscriptions: list[Subscription], seconds: float) -> str:
    """One warning naming each subscribed topic and type, and what the graph has instead: no
    publisher, a topic of that name with another type, or publishers whose QoS cannot reach us."""
    parts = []
    for subscription in subscriptions:
        topic, wanted = subscription.topic_name, _type_name(subscription)
        publishers = node.get_publishers_info_by_topic(topic)
        matching = [p for p in publishers if p.topic_type == wanted]
        others = sorted({p.topic_type for p in publishers} - {wanted})
        if others and not matching:
            note = f"but {topic} carries {', '.join(others)}"
            if topic.endswith("/compressed") and "sensor_msgs/msg/CompressedImage" in others:
                raw = topic[: -len("/compressed")]
                note += f" (give the raw topic {raw}; /compressed is added for you)"
        elif not matching:
            note = "no publisher"
        elif subscription.qos_profile.reliability == ReliabilityPolicy.RELIABLE and all(
            p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in matching
        ):
            note = (
                f"{len(matching)} best-effort publisher(s) cannot reach a reliable subscription "
                f"(node.image_reliability)"
            )
        else:
            note = f"{len(matching)} publisher(s), nothing received"
        parts.append(f"{topic} [{wanted}]: {note}")
    return f"no image received for {seconds:.0f} s on " + "; ".join(parts)
