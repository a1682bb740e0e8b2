"""Core results → ROS messages (and back, for the tests and tools that read the node's output)."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseWithCovarianceStamped, Quaternion, Vector3
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from ros2_netvlad import geometry
from ros2_netvlad.imaging import rgb_to_jpeg
from ros2_netvlad.localization.localizer import Candidate, PosePrior
from ros2_netvlad.tables import field_format, table_rows, upper_triangle

# The ~/loop_closures table (DESIGN §5): one point per candidate, best first, 8-byte aligned rows.
CANDIDATE_FIELDS = [
    ("x", 0, PointField.FLOAT64),
    ("y", 8, PointField.FLOAT64),
    ("z", 16, PointField.FLOAT64),
    ("qx", 24, PointField.FLOAT64),
    ("qy", 32, PointField.FLOAT64),
    ("qz", 40, PointField.FLOAT64),
    ("qw", 48, PointField.FLOAT64),
    ("score", 56, PointField.FLOAT32),
    ("map_id", 60, PointField.UINT32),
    ("map_stamp_sec", 64, PointField.INT32),
    ("map_stamp_nanosec", 68, PointField.UINT32),
    ("verified", 72, PointField.UINT8),
    # appended later (existing names, types and offsets never change; read by name and offset)
    ("inliers", 76, PointField.UINT32),
    ("rerank_score", 80, PointField.FLOAT32),
    # geometry of a verified closure (docs/slam.md): the query robot's pose in the map entry's
    # robot frame, its covariance (upper triangle of the 6×6, ROS order x y z rx ry rz, right
    # perturbation), 0 none / 1 rotation + direction / 2 metric, and a calibrated probability
    ("rel_x", 88, PointField.FLOAT64),
    ("rel_y", 96, PointField.FLOAT64),
    ("rel_z", 104, PointField.FLOAT64),
    ("rel_qx", 112, PointField.FLOAT64),
    ("rel_qy", 120, PointField.FLOAT64),
    ("rel_qz", 128, PointField.FLOAT64),
    ("rel_qw", 136, PointField.FLOAT64),
    ("rel_cov", 144, PointField.FLOAT32, 21),
    ("geometry", 228, PointField.UINT8),
    ("p_correct", 232, PointField.FLOAT32),
    # what accepted a verified row: 1 its own inliers, 2 a sequence of weaker frames, 3 odometry
    # tracking after a closure (localization/sequence.py); 0 not accepted
    ("acceptance", 236, PointField.UINT8),
]
CANDIDATE_DTYPE = np.dtype(
    {
        "names": [f[0] for f in CANDIDATE_FIELDS],
        "formats": [field_format(f[2], f[3] if len(f) > 3 else 1) for f in CANDIDATE_FIELDS],
        "offsets": [f[1] for f in CANDIDATE_FIELDS],
        "itemsize": 240,
    }
)


def stamp_to_ns(stamp: Time) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def candidates_to_cloud(candidates: list[Candidate], stamp: Time, frame_id: str) -> PointCloud2:
    rows = np.zeros(len(candidates), CANDIDATE_DTYPE)
    if candidates:
        poses = np.array(
            [(*c.entry.position, *c.entry.orientation) for c in candidates], dtype=np.float64
        )
        for column, name in enumerate(("x", "y", "z", "qx", "qy", "qz", "qw")):
            rows[name] = poses[:, column]
        rows["score"] = [c.score for c in candidates]
        rows["map_id"] = [c.map_id for c in candidates]
        rows["verified"] = [c.verified for c in candidates]
        rows["inliers"] = [c.inliers for c in candidates]
        rows["rerank_score"] = [c.rerank_score for c in candidates]
        rows["p_correct"] = [c.p_correct for c in candidates]
        rows["acceptance"] = [c.acceptance for c in candidates]
        _fill_geometry(rows, candidates)
        stamps = np.array([c.entry.stamp_ns for c in candidates], dtype=np.int64)
        rows["map_stamp_sec"], rows["map_stamp_nanosec"] = (
            stamps // 1_000_000_000,
            stamps % 1_000_000_000,
        )
    return PointCloud2(
        header=Header(stamp=stamp, frame_id=frame_id),
        height=1,
        width=len(candidates),
        fields=[
            PointField(name=f[0], offset=f[1], datatype=f[2], count=f[3] if len(f) > 3 else 1)
            for f in CANDIDATE_FIELDS
        ],
        is_bigendian=False,
        point_step=CANDIDATE_DTYPE.itemsize,
        row_step=CANDIDATE_DTYPE.itemsize * len(candidates),
        data=rows.tobytes(),
        is_dense=True,
    )


def _fill_geometry(rows: np.ndarray, candidates: list[Candidate]) -> None:
    rows["rel_qw"] = 1.0  # identity where there is no geometry (geometry = 0)
    for row, candidate in zip(rows, candidates):
        relative = candidate.relative
        if relative is None:
            continue
        row["rel_x"], row["rel_y"], row["rel_z"] = relative.pose.position
        row["rel_qx"], row["rel_qy"], row["rel_qz"], row["rel_qw"] = relative.pose.orientation
        row["rel_cov"] = upper_triangle(relative.covariance)
        row["geometry"] = relative.geometry


def cloud_to_candidates(msg: PointCloud2) -> np.ndarray:
    """The table back as a numpy structured array, by field name with the message's own offsets
    and point_step (so tables with fewer or more fields read)."""
    return table_rows(msg)


def pose_msg(position: np.ndarray, orientation: np.ndarray) -> Pose:
    return Pose(
        position=Point(x=float(position[0]), y=float(position[1]), z=float(position[2])),
        orientation=Quaternion(
            x=float(orientation[0]),
            y=float(orientation[1]),
            z=float(orientation[2]),
            w=float(orientation[3]),
        ),
    )


def pose_from_msg(pose: Pose) -> geometry.Pose:
    p, q = pose.position, pose.orientation
    return geometry.Pose((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))


def prior_to_msg(prior: PosePrior, stamp: Time, frame_id: str) -> PoseWithCovarianceStamped:
    msg = PoseWithCovarianceStamped(header=Header(stamp=stamp, frame_id=frame_id))
    msg.pose.pose = pose_msg(prior.pose.position, prior.pose.orientation)
    msg.pose.covariance = [float(v) for v in prior.covariance.reshape(36)]
    return msg


def markers(
    candidates: list[Candidate],
    prior: PosePrior | None,
    stamp: Time,
    frame_id: str,
    namespace: str = "netvlad",
) -> MarkerArray:
    """Candidate poses as spheres coloured red (low score) → green (high), the prior as an arrow."""
    header = Header(stamp=stamp, frame_id=frame_id)
    out = [Marker(header=header, ns=namespace, action=Marker.DELETEALL)]
    for i, c in enumerate(candidates):
        s = float(np.clip(c.score, 0.0, 1.0))
        out.append(
            Marker(
                header=header,
                ns=namespace,
                id=i + 1,
                type=Marker.SPHERE,
                action=Marker.ADD,
                pose=pose_msg(np.asarray(c.entry.position), np.asarray(c.entry.orientation)),
                scale=Vector3(x=1.0, y=1.0, z=1.0),
                color=ColorRGBA(r=1.0 - s, g=s, b=0.2, a=0.9),
            )
        )
    if prior is not None:
        out.append(
            Marker(
                header=header,
                ns=namespace,
                id=0,
                type=Marker.ARROW,
                action=Marker.ADD,
                pose=pose_msg(prior.pose.position, prior.pose.orientation),
                scale=Vector3(x=3.0, y=0.4, z=0.4),
                color=ColorRGBA(r=0.1, g=0.4, b=1.0, a=1.0),
            )
        )
    return MarkerArray(markers=out)


def diagnostics(
    name: str, hardware_id: str, values: dict[str, object], level: bytes, message: str, stamp: Time
) -> DiagnosticArray:
    status = DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])


def rgb_to_image(rgb: np.ndarray, stamp: Time, frame_id: str = "camera", encoding: str = "rgb8"):
    """numpy RGB → sensor_msgs/Image (rgb8 or bgr8): a few lines instead of cv_bridge."""

    pixels = np.ascontiguousarray(rgb if encoding == "rgb8" else rgb[:, :, ::-1])
    return Image(
        header=Header(stamp=stamp, frame_id=frame_id),
        height=pixels.shape[0],
        width=pixels.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=pixels.strides[0],
        data=pixels.tobytes(),
    )


def rgb_to_compressed(rgb: np.ndarray, stamp: Time, frame_id: str = "camera", quality: int = 90):

    return CompressedImage(
        header=Header(stamp=stamp, frame_id=frame_id), format="jpeg", data=rgb_to_jpeg(rgb, quality)
    )
