"""Keyframe selection: take a frame when the robot moved, turned, or enough time passed."""

from __future__ import annotations

import math

import numpy as np

from ros2_netvlad.config import KeyframeConfig
from ros2_netvlad.geometry import Pose, angle_between


class KeyframeSelector:
    def __init__(self, config: KeyframeConfig = KeyframeConfig()) -> None:
        self.config = config
        self._last: tuple[Pose, int] | None = None

    def accept(self, pose: Pose, stamp_ns: int) -> bool:
        """True (and remembered) if this frame should become a keyframe."""
        if self._last is None or self._is_new(pose, stamp_ns):
            self._last = (pose, stamp_ns)
            return True
        return False

    def _is_new(self, pose: Pose, stamp_ns: int) -> bool:
        last_pose, last_stamp = self._last
        c = self.config
        moved = float(np.linalg.norm(pose.position - last_pose.position)) >= c.min_distance
        turned = math.degrees(angle_between(pose.orientation, last_pose.orientation)) >= c.min_angle
        waited = c.max_interval > 0 and (stamp_ns - last_stamp) >= c.max_interval * 1e9
        return moved or turned or waited
