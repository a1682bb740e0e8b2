"""Builders for rosbags message objects (bag writing in tests, benchmarks and the demo world)."""

from __future__ import annotations

import cv2
import numpy as np

from ros2_netvlad.geometry import Pose
from ros2_netvlad.imaging import rgb_to_jpeg
from ros2_netvlad.sources.rosbag import TYPESTORE

T = TYPESTORE.types


def header(stamp_ns: int, frame_id: str):
    time = T["builtin_interfaces/msg/Time"](
        sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)
    )
    return T["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def image(rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera", encoding: str = "rgb8"):
    conversions = {
        "rgb8": None,
        "bgr8": cv2.COLOR_RGB2BGR,
        "rgba8": cv2.COLOR_RGB2RGBA,
        "bgra8": cv2.COLOR_RGB2BGRA,
        "mono8": cv2.COLOR_RGB2GRAY,
    }
    pixels = rgb if conversions[encoding] is None else cv2.cvtColor(rgb, conversions[encoding])
    return _image_of(np.ascontiguousarray(pixels), stamp_ns, frame_id, encoding)


def _image_of(pixels: np.ndarray, stamp_ns: int, frame_id: str, encoding: str):
    """sensor_msgs/Image of contiguous little-endian pixels (H×W or H×W×C)."""
    h, w = pixels.shape[:2]
    return T["sensor_msgs/msg/Image"](
        header=header(stamp_ns, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=pixels.strides[0],
        data=pixels.view(np.uint8).reshape(-1),
    )


def compressed(
    rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera", fmt: str = "jpeg", quality: int = 90
):
    if fmt == "jpeg":
        data = rgb_to_jpeg(rgb, quality)
    else:
        data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    return T["sensor_msgs/msg/CompressedImage"](
        header=header(stamp_ns, frame_id), format=fmt, data=np.frombuffer(data, np.uint8)
    )


def _pose(pose: Pose):
    p, q = pose.position, pose.orientation
    return T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=p[0], y=p[1], z=p[2]),
        orientation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
    )


def _with_covariance(pose: Pose, covariance: np.ndarray | None):
    cov = np.zeros(36) if covariance is None else np.asarray(covariance, float).reshape(36)
    return T["geometry_msgs/msg/PoseWithCovariance"](pose=_pose(pose), covariance=cov)


def odometry(
    pose: Pose,
    stamp_ns: int,
    frame_id: str = "map",
    child_frame_id: str = "base_link",
    covariance: np.ndarray | None = None,
):
    zero = T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
    twist = T["geometry_msgs/msg/TwistWithCovariance"](
        twist=T["geometry_msgs/msg/Twist"](linear=zero, angular=zero), covariance=np.zeros(36)
    )
    return T["nav_msgs/msg/Odometry"](
        header=header(stamp_ns, frame_id),
        child_frame_id=child_frame_id,
        pose=_with_covariance(pose, covariance),
        twist=twist,
    )


def pose_stamped(pose: Pose, stamp_ns: int, frame_id: str = "map"):
    return T["geometry_msgs/msg/PoseStamped"](header=header(stamp_ns, frame_id), pose=_pose(pose))


def pose_with_covariance(
    pose: Pose, stamp_ns: int, frame_id: str = "map", covariance: np.ndarray | None = None
):
    return T["geometry_msgs/msg/PoseWithCovarianceStamped"](
        header=header(stamp_ns, frame_id), pose=_with_covariance(pose, covariance)
    )


def navsatfix(
    lat: float, lon: float, alt: float, stamp_ns: int, frame_id: str = "gps", status: int = 0
):
    fix_status = T["sensor_msgs/msg/NavSatStatus"](status=status, service=1)
    return T["sensor_msgs/msg/NavSatFix"](
        header=header(stamp_ns, frame_id),
        status=fix_status,
        latitude=lat,
        longitude=lon,
        altitude=alt,
        position_covariance=np.zeros(9),
        position_covariance_type=0,
    )


def tf_message(transforms: list[tuple[str, str, Pose]], stamp_ns: int):
    out = []
    for parent, child, pose in transforms:
        p, q = pose.position, pose.orientation
        transform = T["geometry_msgs/msg/Transform"](
            translation=T["geometry_msgs/msg/Vector3"](x=p[0], y=p[1], z=p[2]),
            rotation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        )
        out.append(
            T["geometry_msgs/msg/TransformStamped"](
                header=header(stamp_ns, parent), child_frame_id=child, transform=transform
            )
        )
    return T["tf2_msgs/msg/TFMessage"](transforms=out)


def camera_info(camera, stamp_ns: int, frame_id: str = "camera_optical_frame"):
    """sensor_msgs/CameraInfo of a ``Camera`` (an unrectified camera: R = I, P = [K | 0])."""
    k = np.asarray(camera.k, float)
    p = np.c_[k.reshape(3, 3), np.zeros(3)].reshape(12)
    roi = T["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return T["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_ns, frame_id),
        height=camera.height,
        width=camera.width,
        distortion_model=camera.distortion,
        d=np.asarray(camera.d, float),
        k=k,
        r=np.eye(3).reshape(9),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def depth_image(
    depth_m: np.ndarray,
    stamp_ns: int,
    frame_id: str = "camera_optical_frame",
    encoding: str = "16UC1",
):
    """An aligned depth image: 16UC1 millimetres (0 = unknown) or 32FC1 metres (NaN = unknown)."""
    if encoding == "16UC1":
        pixels = np.nan_to_num(np.round(depth_m * 1000.0), nan=0.0).clip(0, 65535).astype("<u2")
    elif encoding == "32FC1":
        pixels = depth_m.astype("<f4")
    else:
        raise ValueError(f"depth encoding must be 16UC1 or 32FC1, got {encoding!r}")
    return _image_of(pixels, stamp_ns, frame_id, encoding)
