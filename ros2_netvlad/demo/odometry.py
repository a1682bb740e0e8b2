"""Wheel odometry as a robot has it: dead reckoning that drifts (a scale error, a heading bias,
noise), beside the ground truth it is scored on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ros2_netvlad.geometry import Pose, yaw_quaternion

TRUTH_TOPIC = "/ground_truth"  # nav_msgs/Odometry of the true poses, beside the drifting /odom


@dataclass(frozen=True)
class OdometryDrift:
    """Wheel odometry errors: what makes a trajectory drift without loop closures (a skid-steer
    robot's: the block is small, so the drift per metre is what makes it matter)."""

    scale: float = 0.02  # distances read 2 % long (wheel radius error)
    yaw_per_metre: float = 0.003  # heading bias, rad per metre driven (uneven tyres, skidding)
    step_noise: float = 0.02  # relative noise on each step's distance
    yaw_noise: float = 0.005  # rad per step


def _yaw(pose: Pose) -> float:
    x, y, z, w = pose.orientation
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def drifted(truth: list[Pose], drift: OdometryDrift, rng: np.random.Generator) -> list[Pose]:
    """Dead reckoning through the true planar motion, each step corrupted as wheel odometry is."""
    x, y, heading = truth[0].position[0], truth[0].position[1], _yaw(truth[0])
    out = [Pose(np.array([x, y, 0.0]), yaw_quaternion(heading))]
    for before, after in zip(truth, truth[1:]):
        delta = after.position[:2] - before.position[:2]
        distance = float(np.linalg.norm(delta))
        # the step in the robot's own frame, then read by imperfect wheels
        bearing = np.arctan2(delta[1], delta[0]) - _yaw(before)
        turn = float(np.angle(np.exp(1j * (_yaw(after) - _yaw(before)))))  # wrapped to ±π
        measured = distance * (1 + drift.scale + drift.step_noise * rng.normal())
        turn += drift.yaw_per_metre * distance + drift.yaw_noise * rng.normal()
        x += measured * np.cos(heading + bearing)
        y += measured * np.sin(heading + bearing)
        heading += turn
        out.append(Pose(np.array([x, y, 0.0]), yaw_quaternion(heading)))
    return out
