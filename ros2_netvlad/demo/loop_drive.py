"""The 3-D world driven as a robot would for SLAM: around the block twice (the second lap offset
and under other light), with wheel odometry that drifts (a scale error, a heading bias, noise),
ground truth, the camera's CameraInfo and an aligned depth image beside it. It is the input of
online loop closure (the node in ``loop_closure`` mode) and of the pose-graph evaluation
(``slam_eval``)."""

from __future__ import annotations

import numpy as np

from ros2_netvlad.camera import Camera
from ros2_netvlad.demo import messages
from ros2_netvlad.demo.odometry import TRUTH_TOPIC, OdometryDrift, drifted
from ros2_netvlad.demo.world3d import render, route_length, route_pose, world_camera
from ros2_netvlad.geometry import Pose
from ros2_netvlad.sources.rosbag import BagWriter

IMAGE_TOPIC, ODOM_TOPIC = "/camera/image_raw/compressed", "/odom"
CAMERA_INFO_TOPIC, DEPTH_TOPIC = "/camera/camera_info", "/camera/depth/image_rect_raw"
OPTICAL = "camera_optical_frame"  # the images' frame; /tf_static mounts it on base_link


def drive_poses(laps: int = 2, step: float = 1.5, lateral: float = 1.0) -> list[tuple[int, Pose]]:
    """(lap, true base pose) of every frame: ``step`` metres apart around the 3-D world's block;
    later laps run ``lateral`` metres further left, half a step along and turned slightly, so a
    revisit is never the same view."""
    count = int(route_length() // step)
    out = []
    for lap in range(laps):
        shift, side, turn = (0.0, 0.0, 0.0) if lap == 0 else (step / 2, lateral, 0.03)
        out += [(lap, route_pose(i * step + shift, side, turn)) for i in range(count)]
    return out


def write_loop_drive(
    path,
    *,
    seed: int,
    laps: int = 2,
    drift: OdometryDrift = OdometryDrift(),
    camera: Camera | None = None,
    depth: str = "16UC1",
    rate_hz: float = 2.0,
    start_ns: int = 1_700_001_200_000_000_000,
) -> list[int]:
    """Drives the 3-D world's block ``laps`` times and writes, per frame, drifting ``/odom`` and
    ``/ground_truth`` (nav_msgs/Odometry of ``base_link``), the camera's image (CompressedImage),
    ``CameraInfo`` and, unless ``depth`` is empty, an aligned depth image (16UC1 mm or 32FC1 m)
    into a new bag, with the camera's mount on ``/tf_static``. Returns the image stamps."""
    camera = camera or world_camera()
    rng = np.random.default_rng(seed)
    views = drive_poses(laps)
    odometry = drifted([pose for _, pose in views], drift, rng)
    period, stamps = int(1e9 / rate_hz), []
    mount = Pose(camera.to_base[:3], camera.to_base[3:])
    with BagWriter(path) as bag:
        bag.write(
            "/tf_static", messages.tf_message([("base_link", OPTICAL, mount)], start_ns), start_ns
        )
        for n, ((lap, true), odom) in enumerate(zip(views, odometry)):
            stamp = start_ns + n * period
            bag.write(ODOM_TOPIC, messages.odometry(odom, stamp, frame_id="odom"), stamp)
            bag.write(TRUTH_TOPIC, messages.odometry(true, stamp), stamp)
            rgb, metres = render(true, camera)
            view = under_other_light(rgb, rng) if lap > 0 else rgb
            bag.write(CAMERA_INFO_TOPIC, messages.camera_info(camera, stamp, OPTICAL), stamp)
            if depth:
                depth_msg = messages.depth_image(metres, stamp, OPTICAL, encoding=depth)
                bag.write(DEPTH_TOPIC, depth_msg, stamp)
            bag.write(IMAGE_TOPIC, messages.compressed(view, stamp, OPTICAL), stamp)
            stamps.append(stamp)
    return stamps


def under_other_light(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The revisit under other light: brightness, colour cast and sensor noise."""
    out = view.astype(np.float32) * rng.uniform(0.7, 1.2)
    out *= rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    out += rng.normal(0, 4, size=out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)
