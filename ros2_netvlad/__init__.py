"""ros2_netvlad: NetVLAD visual place recognition for ROS 2.

The core modules (everything outside ``ros2_netvlad.ros``) never import rclpy, so the offline tools
and the model run without a ROS install.
"""

__version__ = "0.1.0"
