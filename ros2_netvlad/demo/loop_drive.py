"""The demo world driven as a robot would for SLAM: around the loop of places twice (the second
lap under changed conditions), with wheel odometry that drifts (a scale error, a heading bias,
noise) and ground truth beside it. It is the input of online loop closure (the node in
``loop_closure`` mode) and of the pose-graph evaluation (``slam_eval``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ros2_netvlad.demo import messages
from ros2_netvlad.demo.world import VIEW_OFFSETS, Place, render_view, view_pose
from ros2_netvlad.geometry import Pose, yaw_quaternion
from ros2_netvlad.sources.rosbag import BagWriter

IMAGE_TOPIC, ODOM_TOPIC, TRUTH_TOPIC = "/camera/image_raw/compressed", "/odom", "/ground_truth"


@dataclass(frozen=True)
class OdometryDrift:
    """Wheel odometry errors: what makes a trajectory drift without loop closures."""

    scale: float = 0.01  # distances read 1 % long (wheel radius error)
    yaw_per_metre: float = 0.0006  # heading bias, rad per metre driven (uneven tyres)
    step_noise: float = 0.02  # relative noise on each step's distance
    yaw_noise: float = 0.003  # rad per step


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


def write_loop_drive(
    path,
    places_: list[Place],
    *,
    seed: int,
    laps: int = 2,
    drift: OdometryDrift = OdometryDrift(),
    size: tuple[int, int] = (320, 240),
    rate_hz: float = 2.0,
    start_ns: int = 1_700_001_200_000_000_000,
) -> list[int]:
    """Writes images (CompressedImage), drifting ``/odom`` and ``/ground_truth`` (nav_msgs/Odometry,
    at each image's stamp, written before it) into a new bag. Returns the image stamps."""
    rng = np.random.default_rng(seed)
    views = [
        (lap, place, offset) for lap in range(laps) for place in places_ for offset in VIEW_OFFSETS
    ]
    truth = [view_pose(place.index, len(places_), offset) for _, place, offset in views]
    odometry = drifted(truth, drift, rng)
    period, stamps = int(1e9 / rate_hz), []
    with BagWriter(path) as bag:
        for n, ((lap, place, _), true, odom) in enumerate(zip(views, truth, odometry)):
            stamp = start_ns + n * period
            bag.write(ODOM_TOPIC, messages.odometry(odom, stamp, frame_id="odom"), stamp)
            bag.write(TRUTH_TOPIC, messages.odometry(true, stamp), stamp)
            view = render_view(place, rng, size, changed=lap > 0)
            bag.write(IMAGE_TOPIC, messages.compressed(view, stamp), stamp)
            stamps.append(stamp)
    return stamps
