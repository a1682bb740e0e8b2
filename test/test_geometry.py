"""Poses, interpolation, quaternion averaging, GNSS → ENU and the offline tf buffer."""

import numpy as np
import pytest

from ros2_netvlad.errors import InputError
from ros2_netvlad.geometry import (
    Pose,
    Trajectory,
    angle_between,
    average_quaternions,
    geodetic_to_enu,
    slerp,
    yaw_quaternion,
)
from ros2_netvlad.sources.tf_buffer import TransformBuffer


def test_slerp_halfway_between_yaws():
    q = slerp(yaw_quaternion(0.0), yaw_quaternion(np.pi / 2), 0.5)
    assert angle_between(q, yaw_quaternion(np.pi / 4)) < 1e-9


def test_average_quaternions_ignores_sign_and_uses_weights():
    a, b = yaw_quaternion(0.0), yaw_quaternion(0.2)
    mean = average_quaternions(np.stack([a, -b]), np.array([1.0, 1.0]))
    assert angle_between(mean, yaw_quaternion(0.1)) < 1e-6
    heavy = average_quaternions(np.stack([a, b]), np.array([1.0, 3.0]))
    assert angle_between(heavy, b) < angle_between(heavy, a)


def test_pose_compose_and_inverse():
    a = Pose((1, 2, 3), yaw_quaternion(0.7))
    b = Pose((-2, 0.5, 1), yaw_quaternion(-1.1))
    identity = a.compose(b).compose(b.inverse()).compose(a.inverse())
    np.testing.assert_allclose(identity.position, 0, atol=1e-12)
    assert angle_between(identity.orientation, [0, 0, 0, 1]) < 1e-7
    np.testing.assert_allclose(
        Pose((0, 0, 0), yaw_quaternion(np.pi / 2)).compose(Pose((1, 0, 0))).position,
        (0, 1, 0),
        atol=1e-12,
    )


def test_trajectory_interpolates_within_tolerance():
    trajectory = Trajectory(
        np.array([0, 1_000, 2_000]),
        np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0.0]]),
        np.stack([yaw_quaternion(0), yaw_quaternion(1.0), yaw_quaternion(1.0)]),
    )
    pose = trajectory.at(250, tolerance_ns=300)
    np.testing.assert_allclose(pose.position, (2.5, 0, 0))
    assert angle_between(pose.orientation, yaw_quaternion(0.25)) < 1e-9
    assert trajectory.at(500, tolerance_ns=100) is None  # 500 ns from both neighbours
    assert (
        trajectory.at(2_050, tolerance_ns=100) is not None
        and trajectory.at(2_500, tolerance_ns=100) is None
    )


def test_geodetic_to_enu_matches_known_offsets():
    origin = (47.0, 8.0, 400.0)
    north = geodetic_to_enu(np.array([47.0 + 1 / 60]), np.array([8.0]), np.array([400.0]), origin)[
        0
    ]
    assert (
        north[1] == pytest.approx(1853.2, abs=1.0) and abs(north[0]) < 1e-6
    )  # one arc-minute north
    east = geodetic_to_enu(np.array([47.0]), np.array([8.001]), np.array([400.0]), origin)[0]
    assert east[0] == pytest.approx(111_320 * np.cos(np.radians(47.0)) * 0.001, rel=2e-3)
    up = geodetic_to_enu(np.array([47.0]), np.array([8.0]), np.array([410.0]), origin)[0]
    np.testing.assert_allclose(up, (0, 0, 10), atol=1e-6)


def test_tf_buffer_chains_static_and_dynamic_edges():
    tf = TransformBuffer()
    tf.add("base_link", "camera", 0, Pose((0.5, 0, 1.0)), static=True)
    for t, x in ((0, 0.0), (1_000, 2.0)):
        tf.add("odom", "base_link", t, Pose((x, 0, 0), yaw_quaternion(np.pi / 2)))
    tf.add("map", "odom", 0, Pose((100, 0, 0)), static=True)
    pose = tf.lookup("map", "camera", 500, tolerance_ns=600)
    np.testing.assert_allclose(pose.position, (101.0, 0.5, 1.0), atol=1e-9)
    assert tf.lookup("map", "camera", 5_000, tolerance_ns=100) is None
    with pytest.raises(InputError, match="not connected"):
        tf.lookup("map", "lidar", 0, 100)
