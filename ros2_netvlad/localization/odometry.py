"""Recent odometry, so an image is placed at its own stamp: interpolated like every other pose
source, within a tolerance."""

from __future__ import annotations

from collections import deque

import numpy as np

from ros2_netvlad.geometry import Pose, Trajectory


class OdometryBuffer:
    def __init__(self, size: int = 400) -> None:
        self._samples: deque[tuple[int, Pose]] = deque(maxlen=size)
        self.frame = ""  # the odometry's frame_id, once a message said it

    def add(self, stamp_ns: int, pose: Pose, frame: str = "") -> None:
        self._samples.append((stamp_ns, pose))
        self.frame = frame or self.frame

    def at(self, stamp_ns: int, tolerance_s: float) -> Pose | None:
        """The pose at ``stamp_ns``; None without odometry within ``tolerance_s`` of it."""
        samples = list(self._samples)
        if not samples:
            return None
        stamps = np.array([stamp for stamp, _ in samples], dtype=np.int64)
        positions = np.array([pose.position for _, pose in samples])
        orientations = np.array([pose.orientation for _, pose in samples])
        return Trajectory(stamps, positions, orientations).at(stamp_ns, int(tolerance_s * 1e9))
