"""Real rosbag2 files (sqlite3 and mcap) written with rosbags: images and every pose source."""

from collections import Counter

import numpy as np
import pytest

from ros2_netvlad.demo import messages
from ros2_netvlad.geometry import Pose, yaw_quaternion
from ros2_netvlad.imaging import ImageDecodeError, compressed_to_rgb, raw_to_rgb
from ros2_netvlad.sources.rosbag import BagError, BagWriter, PoseLookup, frames, read_poses

SECOND = 1_000_000_000


def scene(i):
    rng = np.random.default_rng(i)
    return rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)


def write(path, storage, pose_kind, compressed=False):
    """Images at t = 1..5 s (plus one at 30 s with no pose); poses at 0.5 s steps, x = t metres."""
    with BagWriter(path, storage) as bag:
        for k in range(1, 12):
            t = k * SECOND // 2
            pose = Pose((t / SECOND, 0, 0), yaw_quaternion(0.1 * t / SECOND))
            if pose_kind == "odom":
                bag.write("/odom", messages.odometry(pose, t, covariance=np.eye(6) * 0.5), t)
            elif pose_kind == "pose":
                bag.write("/pose", messages.pose_stamped(pose, t), t)
            elif pose_kind == "posecov":
                bag.write("/pose", messages.pose_with_covariance(pose, t), t)
            elif pose_kind == "gps":
                bag.write("/fix", messages.navsatfix(47.0, 8.0 + t / SECOND * 1e-5, 400.0, t), t)
            elif pose_kind == "tf":
                bag.write("/tf", messages.tf_message([("odom", "base_link", pose)], t), t)
        if pose_kind == "tf":
            bag.write(
                "/tf_static",
                messages.tf_message(
                    [("map", "odom", Pose((10, 0, 0))), ("base_link", "camera", Pose((0, 0, 1)))], 0
                ),
                0,
            )
        for k in (1, 2, 3, 4, 5, 30):
            msg = (
                messages.compressed(scene(k), k * SECOND, fmt="png")
                if compressed
                else messages.image(scene(k), k * SECOND, encoding="bgr8")
            )
            bag.write("/cam/compressed" if compressed else "/cam", msg, k * SECOND)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize(
    "pose_kind, lookup",
    [
        ("odom", PoseLookup("/odom")),
        ("pose", PoseLookup("/pose")),
        ("posecov", PoseLookup("/pose")),
        ("tf", PoseLookup(tf_frames=("map", "camera"))),
    ],
)
def test_frames_with_metric_poses(tmp_path, storage, pose_kind, lookup):
    compressed = pose_kind == "pose"
    write(tmp_path / "bag", storage, pose_kind, compressed=compressed)
    counts = Counter()
    got = list(
        frames(tmp_path / "bag", "/cam/compressed" if compressed else "/cam", lookup, counts=counts)
    )
    assert [f.stamp_ns for f in got] == [k * SECOND for k in range(1, 6)]
    assert counts["no pose within tolerance"] == 1 and counts["images"] == 6
    offset = np.array([10.0, 0, 1]) if pose_kind == "tf" else np.zeros(3)
    for k, frame in enumerate(got, start=1):
        np.testing.assert_allclose(frame.pose.position, np.array([k, 0, 0]) + offset, atol=1e-9)
        np.testing.assert_array_equal(frame.image, scene(k))  # bgr8 and png both come back as RGB


def test_gnss_poses_become_local_metres(tmp_path):
    write(tmp_path / "bag", "mcap", "gps")
    got = list(frames(tmp_path / "bag", "/cam", PoseLookup("/fix")))
    east = [f.pose.position[0] for f in got]
    np.testing.assert_allclose(np.diff(east), 1e-5 * 111_320 * np.cos(np.radians(47)), rtol=3e-3)
    assert got[0].geo == pytest.approx((47.0, 8.0 + 1e-5, 400.0))
    track = read_poses(tmp_path / "bag", "/fix")
    assert track.origin == pytest.approx((47.0, 8.0 + 0.5e-5, 400.0))


def test_keyframe_rule_and_pose_covariance(tmp_path):
    write(tmp_path / "bag", "sqlite3", "odom")
    counts = Counter()
    got = list(
        frames(
            tmp_path / "bag",
            "/cam",
            PoseLookup("/odom"),
            keep=lambda pose, stamp: stamp % (2 * SECOND) == 0,
            counts=counts,
        )
    )
    assert [f.stamp_ns for f in got] == [2 * SECOND, 4 * SECOND] and counts["not a keyframe"] == 3
    assert read_poses(tmp_path / "bag", "/odom").trajectory.covariances[0][0] == 0.5
    assert got[0].covariance is not None and got[0].covariance[0] == 0.5  # travels into map entries


def test_bag_errors_name_bag_and_topic(tmp_path):
    write(tmp_path / "bag", "mcap", "odom")
    with pytest.raises(
        BagError, match="no topic '/camera'; the bag has: /cam \\[sensor_msgs/msg/Image\\]"
    ):
        list(frames(tmp_path / "bag", "/camera", PoseLookup("/odom")))
    with pytest.raises(BagError, match="/cam is sensor_msgs/msg/Image, expected one of nav_msgs"):
        read_poses(tmp_path / "bag", "/cam")
    with pytest.raises(BagError, match="bag not found"):
        list(frames(tmp_path / "missing", "/cam", PoseLookup("/odom")))
    with pytest.raises(BagError, match="no /tf or /tf_static"):
        list(frames(tmp_path / "bag", "/cam", PoseLookup(tf_frames=("map", "camera"))))
    with pytest.raises(ValueError, match="exactly one pose source"):
        PoseLookup("/odom", ("map", "camera"))


@pytest.mark.parametrize(
    "args, message",
    [
        (("yuv422", 2, 2, 4, b"\0" * 8), "unsupported encoding"),
        (("rgb8", 0, 4, 12, b""), "zero-size"),
        (("rgb8", 2, 4, 10, b"\0" * 24), "step 10 is smaller"),
        (("rgb8", 2, 4, 12, b"\0" * 20), "data holds 20 bytes"),
    ],
)
def test_raw_image_errors(args, message):
    with pytest.raises(ImageDecodeError, match=message):
        raw_to_rgb(*args)


def test_raw_encodings_and_padding():
    rgb = scene(3)
    padded = np.zeros((24, 100), np.uint8)
    padded[:, :96] = rgb.reshape(24, 96)
    np.testing.assert_array_equal(raw_to_rgb("rgb8", 24, 32, 100, padded.tobytes()), rgb)
    mono16 = (np.arange(24 * 32, dtype=np.uint16) * 50).reshape(24, 32)
    out = raw_to_rgb("mono16", 24, 32, 64, mono16.byteswap().tobytes(), is_bigendian=True)
    assert out.shape == (24, 32, 3) and out[-1, -1, 0] == 255 and out[0, 0, 0] == 0
    with pytest.raises(ImageDecodeError, match="corrupt or not jpeg/png"):
        compressed_to_rgb(b"\xff\xd8\xff\xe0 truncated jpeg", "jpeg")
