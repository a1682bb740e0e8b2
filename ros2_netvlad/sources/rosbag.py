"""rosbag2 (sqlite3 and mcap) access through ``rosbags``: image frames with poses, and a writer.

Pose sources: nav_msgs/Odometry, geometry_msgs/PoseStamped, PoseWithCovarianceStamped,
sensor_msgs/NavSatFix (converted to east-north-up metres around an origin), or /tf + /tf_static.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ros2_netvlad.errors import InputError
from ros2_netvlad.geometry import Pose, Trajectory, geodetic_to_enu
from ros2_netvlad.imaging import ImageDecodeError, message_to_depth, message_to_rgb
from ros2_netvlad.sources.tf_buffer import TransformBuffer

log = logging.getLogger(__name__)

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
POSE_TYPES = (
    "nav_msgs/msg/Odometry",
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/PoseWithCovarianceStamped",
    "sensor_msgs/msg/NavSatFix",
)


class BagError(InputError):
    """A bag cannot be read as asked; the message names the bag and the topic."""


def stamp_ns(header: object) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


@dataclass
class PoseTrack:
    """Poses from one bag: a trajectory in ``frame_id``, plus geodetic fixes for NavSatFix."""

    trajectory: Trajectory
    frame_id: str
    geo: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    origin: tuple[float, float, float] | None = None


@dataclass
class Frame:
    """The one posed-image record every source yields (bags, folders, .mat, plugins)."""

    stamp_ns: int
    image: np.ndarray
    pose: Pose
    frame_id: str
    source: str  # bag:topic, or the image file
    covariance: np.ndarray | None = None
    geo: tuple[float, float, float] | None = None
    key: int | None = None  # what the source planned it by (default: the stamp)
    depth: np.ndarray | None = None  # aligned depth image, metres (NaN unknown), where recorded

    @property
    def plan_key(self) -> int:
        return self.stamp_ns if self.key is None else self.key

    @property
    def name(self) -> str:
        """How reports name it: the file, or bag:topic@stamp."""
        return self.source if self.key is not None else f"{self.source}@{self.stamp_ns}"


def open_bag(path: str | Path) -> AnyReader:
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    try:
        return AnyReader([path], default_typestore=TYPESTORE)
    except (AnyReaderError, Exception) as error:  # rosbags raises several reader errors
        raise BagError(f"{path}: cannot open as a rosbag2 (sqlite3 or mcap): {error}") from None


def _connections(reader: AnyReader, topic: str, bag: Path, kinds: Sequence[str]) -> list:
    connections = [c for c in reader.connections if c.topic == topic]
    if not connections:
        topics = ", ".join(sorted({f"{c.topic} [{c.msgtype}]" for c in reader.connections}))
        raise BagError(f"{bag}: no topic {topic!r}; the bag has: {topics}")
    if connections[0].msgtype not in kinds:
        raise BagError(
            f"{bag}: {topic} is {connections[0].msgtype}, expected one of {', '.join(kinds)}"
        )
    return connections


def read_poses(
    bag: str | Path, topic: str, origin: tuple[float, float, float] | None = None
) -> PoseTrack:
    """All poses on ``topic``. NavSatFix fixes become ENU metres around ``origin`` (default: the
    first valid fix), with identity orientation."""
    stamps, positions, orientations, covariances, geo = [], [], [], [], {}
    frame_id = ""
    with open_bag(bag) as reader:
        connections = _connections(reader, topic, Path(bag), POSE_TYPES)
        msgtype = connections[0].msgtype
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            if msgtype.endswith("NavSatFix"):
                if msg.status.status < 0:  # no fix
                    continue
                geo[stamp_ns(msg.header)] = (msg.latitude, msg.longitude, msg.altitude)
                continue
            pose = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
            stamps.append(stamp_ns(msg.header))
            positions.append((pose.position.x, pose.position.y, pose.position.z))
            orientations.append(
                (pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w)
            )
            covariances.append(
                np.asarray(msg.pose.covariance, float) if hasattr(msg.pose, "covariance") else None
            )
            frame_id = frame_id or msg.header.frame_id
    if msgtype.endswith("NavSatFix"):
        return _gnss_track(geo, origin, Path(bag), topic)
    if not stamps:
        raise BagError(f"{bag}: no poses on {topic}")
    has_covariance = all(c is not None for c in covariances)
    return PoseTrack(
        Trajectory(
            np.array(stamps),
            np.array(positions),
            np.array(orientations),
            np.array(covariances) if has_covariance else None,
        ),
        frame_id or "map",
    )


def _gnss_track(geo: dict, origin: tuple | None, bag: Path, topic: str) -> PoseTrack:
    if not geo:
        raise BagError(f"{bag}: no valid NavSatFix fixes on {topic}")
    stamps = np.array(sorted(geo))
    lla = np.array([geo[s] for s in stamps])
    origin = origin or tuple(map(float, lla[0]))
    enu = geodetic_to_enu(lla[:, 0], lla[:, 1], lla[:, 2], origin)
    orientations = np.tile([0.0, 0.0, 0.0, 1.0], (len(stamps), 1))
    return PoseTrack(Trajectory(stamps, enu, orientations), "map", geo, origin)


def read_tf(bag: str | Path) -> TransformBuffer:
    buffer = TransformBuffer()
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic in ("/tf", "/tf_static")]
        if not connections:
            raise BagError(f"{bag}: no /tf or /tf_static topics to look poses up in")
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            for t in msg.transforms:
                r, q = t.transform.translation, t.transform.rotation
                buffer.add(
                    t.header.frame_id,
                    t.child_frame_id,
                    stamp_ns(t.header),
                    Pose((r.x, r.y, r.z), (q.x, q.y, q.z, q.w)),
                    static=connection.topic == "/tf_static",
                )
    return buffer


def image_messages(bag: str | Path, topic: str) -> Iterator[tuple[int, str, object]]:
    """(header stamp ns, frame_id, message) for each image on ``topic``, in bag order."""
    with open_bag(bag) as reader:
        connections = _connections(reader, topic, Path(bag), IMAGE_TYPES)
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            yield stamp_ns(msg.header), msg.header.frame_id, msg


CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def read_camera_info(bag: str | Path, topic: str):
    """The first calibrated CameraInfo message on ``topic``; None when the bag has no such topic
    or the camera is uncalibrated (K all zero)."""
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            return None
        if connections[0].msgtype != CAMERA_INFO_TYPE:
            raise BagError(f"{bag}: {topic} is {connections[0].msgtype}, expected CameraInfo")
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            if any(msg.k):
                return msg
    return None


def camera_mount(bag: str | Path, image_frame: str, poses: PoseLookup) -> Pose | None:
    """The camera's optical frame (``image_frame``, CameraInfo's header frame) in the frame the
    poses are of, from the bag's /tf_static (and /tf): in the odometry's ``child_frame_id``, or
    the tf-looked-up camera frame. None when the bag does not say (no tf, frames not connected,
    poses of an unnamed frame)."""
    posed = poses.tf_frames[1] if poses.tf_frames else _odometry_child(bag, poses.topic)
    if not image_frame or not posed:
        return None
    if image_frame.lstrip("/") == posed.lstrip("/"):
        return Pose()  # the poses are the camera's own
    with open_bag(bag) as reader:
        if not any(c.topic in ("/tf", "/tf_static") for c in reader.connections):
            return None
    try:
        return read_tf(bag).lookup(posed, image_frame, 0, 2**62)
    except InputError as error:
        log.warning("%s: no camera mount in tf (%s)", bag, error)
        return None


def _odometry_child(bag: str | Path, topic: str) -> str:
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections or not connections[0].msgtype.endswith("Odometry"):
            return ""
        for connection, _, raw in reader.messages(connections=connections):
            return reader.deserialize(raw, connection.msgtype).child_frame_id
    return ""


def depth_matcher(bag: str | Path, topic: str, tolerance_ns: int = 20_000_000):
    """A function stamp → the depth image (metres) recorded within ``tolerance_ns`` of it, or
    None; asked in increasing stamps, it reads the depth topic once, alongside the images."""
    with open_bag(bag) as reader:
        _connections(reader, topic, Path(bag), ("sensor_msgs/msg/Image",))
    messages = image_messages(bag, topic)
    pending: list[tuple[int, object]] = []

    def at(stamp: int) -> np.ndarray | None:
        while not pending or pending[-1][0] < stamp + tolerance_ns:
            item = next(messages, None)
            if item is None:
                break
            pending.append((item[0], item[2]))
        while pending and pending[0][0] < stamp - tolerance_ns:
            pending.pop(0)
        near = [(abs(s - stamp), msg) for s, msg in pending if abs(s - stamp) <= tolerance_ns]
        return message_to_depth(min(near, key=lambda x: x[0])[1]) if near else None

    return at


@dataclass
class PoseLookup:
    """Where poses come from: a topic (``read_poses``) or /tf between two frames."""

    topic: str = ""
    tf_frames: tuple[str, str] | None = None  # (map frame, camera frame)
    tolerance_ns: int = 100_000_000
    origin: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if bool(self.topic) == bool(self.tf_frames):
            raise InputError("give exactly one pose source: a pose topic or a pair of tf frames")


def frames(
    bag: str | Path,
    image_topic: str,
    poses: PoseLookup | BagPoses,
    keep=lambda pose, stamp: True,
    counts: Counter | None = None,
) -> Iterator[Frame]:
    """Decoded frames with their poses. Frames without a pose within the tolerance, frames the
    ``keep`` rule rejects (keyframe selection, sharding) and undecodable images are skipped and
    counted in ``counts``; only kept frames are decoded. Give ``BagPoses`` read once to avoid
    reading the pose topic (or /tf) again on every pass."""
    counts = counts if counts is not None else Counter()
    poses = poses if isinstance(poses, BagPoses) else BagPoses.read(bag, poses)
    source = f"{Path(bag).name}:{image_topic}"
    for stamp, _, msg in image_messages(bag, image_topic):
        counts["images"] += 1
        pose = poses.at(stamp)
        if pose is None:
            counts["no pose within tolerance"] += 1
            continue
        if not keep(pose, stamp):
            counts["not a keyframe"] += 1
            continue
        try:
            image = message_to_rgb(msg)
        except ImageDecodeError as error:
            counts["undecodable image"] += 1
            log.warning("%s at %d ns: %s", source, stamp, error)
            continue
        counts["kept"] += 1
        geo, covariance = poses.extras_at(stamp)
        yield Frame(stamp, image, pose, poses.frame_id, source, covariance, geo)


class BagPoses:
    """A bag's poses, read once: a pose topic (NavSatFix fixes as metres around ``origin``, by
    default the first fix, available as ``.origin`` afterwards) or /tf between two frames."""

    def __init__(self, at, frame_id: str, extras_at, origin=None) -> None:
        self.at, self.frame_id, self.extras_at, self.origin = at, frame_id, extras_at, origin

    @classmethod
    def read(cls, bag: str | Path, poses: PoseLookup) -> "BagPoses":
        if poses.tf_frames:
            buffer = read_tf(bag)
            target, camera = poses.tf_frames
            buffer.lookup(target, camera, 0, 2**62)  # fail early, naming the frames, if unconnected
            return cls(
                lambda s: buffer.lookup(target, camera, s, poses.tolerance_ns),
                target,
                lambda s: (None, None),
            )
        track = read_poses(bag, poses.topic, poses.origin)
        fixes = np.array(sorted(track.geo), dtype=np.int64)

        def geo_at(stamp: int):
            if not len(fixes):
                return None
            i = int(np.searchsorted(fixes, stamp))
            nearest = min(fixes[max(i - 1, 0) : i + 1], key=lambda s: abs(int(s) - stamp))
            close = abs(int(nearest) - stamp) <= poses.tolerance_ns
            return track.geo[int(nearest)] if close else None

        def extras_at(stamp: int):  # the fix and the pose covariance that go with an image
            return geo_at(stamp), track.trajectory.covariance_at(stamp)

        return cls(
            lambda s: track.trajectory.at(s, poses.tolerance_ns),
            track.frame_id,
            extras_at,
            track.origin,
        )


# --- writing (tests, demo world) ------------------------------------------------------------------


class BagWriter:
    """Writes typed messages into a new rosbag2 (``storage`` 'mcap' or 'sqlite3')."""

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise InputError(f"storage must be mcap or sqlite3, got {storage!r}")
        self._writer = Writer(Path(path), version=9, storage_plugin=plugins[storage])
        self._connections: dict[str, object] = {}
        self.types = TYPESTORE.types

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()

    def write(self, topic: str, msg: object, timestamp_ns: int) -> None:
        msgtype = msg.__msgtype__
        self.write_raw(topic, msgtype, TYPESTORE.serialize_cdr(msg, msgtype), timestamp_ns)

    def write_raw(self, topic: str, msgtype: str, cdr: bytes, timestamp_ns: int) -> None:
        """A message already serialized (CDR, as rclpy hands it to a raw subscription)."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=TYPESTORE
            )
        self._writer.write(self._connections[topic], int(timestamp_ns), cdr)
