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
            "formats": [field_format(f.datatype, f.count, order) for f in msg.fields],
            "offsets": [f.offset for f in msg.fields],
            "itemsize": msg.point_step,
        }
    )
    return np.frombuffer(bytes(msg.data), dtype, count=msg.width * msg.height)


def field_format(datatype: int, count: int = 1, order: str = "<") -> str:
    """A PointField as a numpy format; ``count`` > 1 is a fixed-size array (e.g. rel_cov)."""
    base = order + POINT_FIELD_TYPES[datatype]
    return base if count <= 1 else f"({count},){base}"


UPPER = np.triu_indices(6)  # rel_cov: the upper triangle of the 6×6, row by row


def upper_triangle(covariance: np.ndarray) -> np.ndarray:
    return np.asarray(covariance, float)[UPPER]


def from_upper_triangle(values) -> np.ndarray:
    """The 21 values of a ``rel_cov`` field back as the symmetric 6×6 (ROS order x y z rx ry rz)."""
    out = np.zeros((6, 6))
    out[UPPER] = np.asarray(values, float)
    return out + np.triu(out, 1).T
