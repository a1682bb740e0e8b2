"""PointCloud2 tables (the ~/loop_closures message) read as numpy, the way a consumer must: by
field name, with the message's own offsets and ``point_step``. ROS-free: it takes any object
shaped like sensor_msgs/PointCloud2 (an rclpy message or one deserialized by rosbags)."""

from __future__ import annotations

import numpy as np

# sensor_msgs/PointField datatypes → numpy
POINT_FIELD_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def table_rows(msg) -> np.ndarray:
    """The rows as a structured array (tables with fewer or more fields read the same way)."""
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype(
        {
            "names": [f.name for f in msg.fields],
            "formats": [order + POINT_FIELD_TYPES[f.datatype] for f in msg.fields],
            "offsets": [f.offset for f in msg.fields],
            "itemsize": msg.point_step,
        }
    )
    return np.frombuffer(bytes(msg.data), dtype, count=msg.width * msg.height)
