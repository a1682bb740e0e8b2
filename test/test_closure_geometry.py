"""Loop closures that carry geometry: the camera from CameraInfo / camera_calibration YAML, the
relative pose (metric with stored keypoint depths, rotation + direction without) and its frame
convention, the table's appended fields, accuracy on the 3-D world and on a real stereo pair,
and the real node in localize mode publishing a closure with geometry and a pose prior from it
over real rclpy (CameraInfo, Image, PointCloud2)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import yaml
from rclpy.parameter import Parameter
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo

from nodeutil import Client
from ros2_netvlad.camera import (
    Camera,
    camera_from_info,
    camera_from_yaml,
    camera_info_topic,
    keypoint_depths,
)
from ros2_netvlad.demo.loop_drive import (
    CAMERA_INFO_TOPIC,
    DEPTH_TOPIC,
    IMAGE_TOPIC,
    write_loop_drive,
)
from ros2_netvlad.demo.world3d import MOUNT, render, route_pose, world_camera
from ros2_netvlad.demo.world_pairs import world_pairs
from ros2_netvlad.errors import InputError
from ros2_netvlad.evaluation.geometry import accuracy, consistency, pose_error, true_relative
from ros2_netvlad.evaluation.slam import _closure
from ros2_netvlad.geometry import Pose
from ros2_netvlad.localization.localizer import Candidate
from ros2_netvlad.localization.relative_pose import (
    GEOMETRY_DIRECTION,
    GEOMETRY_METRIC,
    Correspondences,
    RelativePose,
    compose_prior,
    relative_pose,
)
from ros2_netvlad.maps.database import Entry, MapDatabase
from ros2_netvlad.ros.conversions import candidates_to_cloud, cloud_to_candidates, ns_to_stamp
from ros2_netvlad.ros.node import LocalizerNode
from ros2_netvlad.tables import from_upper_triangle
from ros2_netvlad.tools import build_map
from ros2_netvlad.verification.features import FeatureSettings
from ros2_netvlad.verification.registry import make_verifier
from rosutil import ros_session, spin_until

CAMERA = world_camera()
SWAP = np.r_[3:6, 0:3]  # ROS (x y z rx ry rz) → gtsam (rx ry rz x y z)


# --- the camera -----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["plumb_bob", "rational_polynomial", "equidistant"])
def test_pixels_become_rays_and_back_for_each_distortion_model(model):
    camera = world_camera(distortion=model)
    rng = np.random.default_rng(0)
    pixels = rng.uniform([5, 5], [camera.width - 5, camera.height - 5], (200, 2))
    back = camera.project(camera.normalized(pixels))
    assert np.abs(back - pixels).max() < 0.01  # pixels
    # the rays are undistorted: a pinhole projection of them is not the distorted pixel
    ideal = camera.normalized(pixels) * CAMERA.focal + camera.matrix[:2, 2]
    assert np.abs(ideal - pixels).max() > 1.0


def test_camera_from_camera_info_and_calibration_yaml(tmp_path):
    msg = CameraInfo(width=320, height=240, distortion_model="plumb_bob")
    msg.k, msg.d = list(CAMERA.k), list(CAMERA.d)
    assert camera_from_info(msg, CAMERA.to_base) == CAMERA
    assert camera_from_info(CameraInfo(width=320, height=240)) is None  # uncalibrated: K = 0
    msg.distortion_model = "kannala"
    with pytest.raises(InputError, match="kannala"):
        camera_from_info(msg)
    calibration = {
        "image_width": 320,
        "image_height": 240,
        "camera_name": "front",
        "camera_matrix": {"rows": 3, "cols": 3, "data": list(CAMERA.k)},
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": list(CAMERA.d)},
    }
    (tmp_path / "front.yaml").write_text(yaml.safe_dump(calibration))
    assert camera_from_yaml(tmp_path / "front.yaml", CAMERA.to_base) == CAMERA
    newer = {**CAMERA.to_json(), "version": 2}  # a map written by a newer package
    with pytest.raises(InputError, match="version 2"):
        Camera.from_json(newer)
    assert Camera.from_json(CAMERA.to_json()) == CAMERA
    (tmp_path / "bad.yaml").write_text("image_width: 320\n")
    with pytest.raises(InputError, match="camera_matrix"):
        camera_from_yaml(tmp_path / "bad.yaml")


def test_camera_info_is_the_image_topics_sibling():
    assert camera_info_topic("/camera/image_raw") == "/camera/camera_info"
    assert camera_info_topic("/camera/color/image_raw/compressed") == "/camera/color/camera_info"
    assert camera_info_topic("image") == "camera_info"  # relative, in the node's namespace


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_images_decode_to_metres(encoding):
    from ros2_netvlad.demo import messages
    from ros2_netvlad.imaging import ImageDecodeError, message_to_depth

    depth = np.full((4, 6), 2.5, np.float32)
    depth[0, 0] = np.nan
    decoded = message_to_depth(messages.depth_image(depth, 1, encoding=encoding))
    assert np.isnan(decoded[0, 0]) and np.allclose(decoded[1:], 2.5, atol=1e-3)
    wrong = messages.image(np.zeros((4, 6, 3), np.uint8), 1)
    with pytest.raises(ImageDecodeError, match="16UC1"):
        message_to_depth(wrong)


def test_keypoint_depths_interpolate_and_refuse_edges():
    depth = np.tile(np.linspace(2.0, 4.0, 40, dtype=np.float32), (30, 1))
    depth[:, 30:] = np.nan  # sky
    got = keypoint_depths(np.array([[10.5, 12.0], [29.5, 5.0], [0.0, 0.0], [5.0, 5.0]]), depth)
    assert got[0] == pytest.approx(2.0 + 10.5 * 2.0 / 39, abs=1e-5)  # bilinear, not nearest
    assert np.isnan(got[1]) and np.isnan(got[2])  # next to the sky; on the border
    assert got[3] == pytest.approx(2.0 + 5 * 2.0 / 39, abs=1e-5)


# --- the relative pose and its convention ---------------------------------------------------------
def _synthetic(rng, camera, map_pose, query_pose, n=150, noise=0.3):
    """Points in front of the map camera seen by both cameras (robot poses, world frame)."""
    from ros2_netvlad.demo.world3d import camera_pose

    map_cam, query_cam = camera_pose(map_pose, camera), camera_pose(query_pose, camera)
    local = np.c_[rng.uniform(-3, 3, n), rng.uniform(-1.5, 1.5, n), rng.uniform(4, 9, n)]
    world = local @ map_cam[:3, :3].T + map_cam[:3, 3]
    in_query = (world - query_cam[:3, 3]) @ query_cam[:3, :3]
    map_px = camera.project(local[:, :2] / local[:, 2:]) + rng.normal(0, noise, (n, 2))
    query_px = camera.project(in_query[:, :2] / in_query[:, 2:]) + rng.normal(0, noise, (n, 2))
    return Correspondences(query_px, map_px, local[:, 2].copy())


def test_the_relative_pose_is_the_query_robot_in_the_map_robots_frame():
    """T = T_map⁻¹ · T_query between robot (base) poses, with the camera 0.2 m ahead of and
    1.2 m above the base: a between-factor's measurement."""
    rng = np.random.default_rng(3)
    map_pose = Pose((4.0, -2.0, 0.0), Rotation.from_euler("z", 30, degrees=True).as_quat())
    query_pose = Pose((4.6, -1.5, 0.05), Rotation.from_euler("zy", [36, 2], degrees=True).as_quat())
    pairs = _synthetic(rng, CAMERA, map_pose, query_pose)
    truth = true_relative(map_pose, query_pose)
    metric = relative_pose(pairs, CAMERA, CAMERA)
    assert metric.geometry == GEOMETRY_METRIC
    error = pose_error(metric, truth)
    assert error.rotation_deg < 0.3 and error.translation_m < 0.03, error
    # monocular: rotation and the direction of the translation (unit length)
    no_depth = Correspondences(pairs.query, pairs.map, None)
    direction = relative_pose(no_depth, CAMERA, CAMERA)
    assert direction.geometry == GEOMETRY_DIRECTION
    assert np.linalg.norm(direction.pose.position) == pytest.approx(1.0)
    assert pose_error(direction, truth).rotation_deg < 0.5
    # the camera's offset is what separates the robots' translation from the cameras'
    assert np.linalg.norm(truth.position - metric.pose.position) < 0.03
    # composing it onto the entry's pose gives the query robot back, covariance in map axes
    prior, covariance = compose_prior(map_pose, metric)
    assert np.linalg.norm(prior.position - query_pose.position) < 0.03
    assert covariance.shape == (6, 6) and np.allclose(covariance, covariance.T)
    mono_prior, _ = compose_prior(map_pose, direction)
    assert np.allclose(mono_prior.position, map_pose.position)  # rotation-only correction


def test_the_covariance_is_consistent_on_synthetic_pairs():
    rng = np.random.default_rng(4)
    errors = []
    for _ in range(60):
        map_pose = Pose((0, 0, 0), Rotation.from_euler("z", rng.uniform(-0.05, 0.05)).as_quat())
        query_pose = Pose(
            (rng.normal(0, 0.6), rng.normal(0, 0.6), 0),
            Rotation.from_euler("z", rng.uniform(-0.05, 0.05)).as_quat(),
        )
        pairs = _synthetic(rng, CAMERA, map_pose, query_pose)
        errors.append(
            pose_error(relative_pose(pairs, CAMERA, CAMERA), true_relative(map_pose, query_pose))
        )
    nees = consistency(errors, 6)
    assert 2.0 <= nees["nees_mean"] <= 12.0 and nees["inside_95"] >= 0.8, nees


def test_too_few_or_degenerate_pairs_give_no_pose():
    few = Correspondences(np.zeros((5, 2)), np.zeros((5, 2)), None)
    assert relative_pose(few, CAMERA, CAMERA) is None
    rng = np.random.default_rng(0)
    same = rng.uniform(0, 300, (40, 2))
    assert relative_pose(Correspondences(same, same, None), CAMERA, CAMERA) is None  # no baseline


# --- the 3-D world and a real stereo pair ---------------------------------------------------------
def test_relative_poses_on_the_3d_world_meet_the_targets():
    """Revisit views (other light, up to 0.6 m over, turned up to 5°) against the first lap's
    nearest frames, through the SIFT verifier and the localizer's relative-pose code."""
    metric = [p for p in world_pairs(12, seed=7) if p.estimate is not None]
    errors = [pose_error(p.estimate, true_relative(p.map_pose, p.query_pose)) for p in metric]
    figures = accuracy(errors)
    assert len(errors) >= 20 and all(e.geometry == GEOMETRY_METRIC for e in errors), figures
    assert figures["rotation_deg_median"] <= 1.0 and figures["rotation_deg_p90"] <= 3.0, figures
    assert figures["translation_budget_ratio_median"] <= 1.0, figures  # 3 % baseline + 2 cm
    mono = [p for p in world_pairs(12, seed=7, depth=False) if p.estimate is not None]
    errors = [pose_error(p.estimate, true_relative(p.map_pose, p.query_pose)) for p in mono]
    figures = accuracy(errors)
    assert len(errors) >= 5 and all(e.geometry == GEOMETRY_DIRECTION for e in errors), figures
    assert figures["rotation_deg_median"] <= 1.0 and figures["direction_deg_median"] <= 3.0, figures


def test_a_real_stereo_pair_gives_identity_rotation_and_a_sideways_baseline():
    """scikit-image's rectified Middlebury motorcycle pair (calibration published with it,
    scaled to the shipped 741 px width): the right camera sits 193 mm along +x of the left."""
    left, right, _ = skimage.data.stereo_motorcycle()
    scale = left.shape[1] / 2964
    optical = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # poses of the optical frames themselves

    def camera(cx: float) -> Camera:
        f = 3997.684 * scale
        k = (f, 0, cx * scale, 0, f, 1011.728 * scale, 0, 0, 1)
        return Camera(left.shape[1], left.shape[0], k, (), "plumb_bob", optical)

    settings = FeatureSettings(max_features=2048)
    verifier = make_verifier(settings)
    map_features, query_features = verifier.extract(left), verifier.extract(right)
    evidence = verifier.evidence(
        verifier.prepare(query_features), verifier.prepare(map_features), 30
    )
    from ros2_netvlad.localization.relative_pose import verified_pair_pose

    estimate = verified_pair_pose(
        evidence,
        query_features,
        map_features,
        camera(1307.839),
        camera(1176.728),
        settings,
    )
    assert estimate is not None and estimate.geometry == GEOMETRY_DIRECTION
    rotation = np.degrees(Rotation.from_quat(estimate.pose.orientation).magnitude())
    assert rotation <= 2.0
    assert estimate.pose.position @ [1.0, 0.0, 0.0] >= np.cos(np.radians(3.0))


# --- the table ------------------------------------------------------------------------------------
def test_geometry_fields_are_appended_and_read_back_by_name():
    covariance = np.diag([0.01, 0.02, 0.03, 0.001, 0.002, 0.003]) + 0.0001
    relative = RelativePose(Pose((0.5, -0.2, 0.0), (0, 0, 0.1, 0.995)), covariance, 2, 80)
    entry = Entry(1_700_000_003_250_000_000, "odom", (1.5, -2.0, 0.0))
    with_geometry = Candidate(7, 0.61, entry, True, 80, 80.61, relative, 0.97)
    without = Candidate(2, 0.4, entry, False, 9, 0.4)
    msg = candidates_to_cloud([with_geometry, without], ns_to_stamp(5), "odom")
    names = [f.name for f in msg.fields]
    assert names.index("rerank_score") < names.index("rel_x") and names[-2:] == [
        "p_correct",
        "acceptance",
    ]
    assert next(f for f in msg.fields if f.name == "rel_cov").count == 21
    rows = cloud_to_candidates(msg)
    assert rows["geometry"].tolist() == [2, 0]
    assert np.allclose(from_upper_triangle(rows["rel_cov"][0]), covariance, rtol=1e-6)
    assert rows["rel_qw"][1] == 1.0 and not rows["rel_cov"][1].any()  # identity, no geometry
    assert rows["p_correct"][0] == pytest.approx(0.97)
    closure = _closure(rows[0], 5)  # what slam_eval reads
    assert closure.geometry == 2 and np.allclose(closure.relative.position, (0.5, -0.2, 0.0))
    assert _closure(rows[1], 5).relative is None
    # a recording from before the geometry fields (88-byte rows) reads as geometry 0
    old = candidates_to_cloud([with_geometry], ns_to_stamp(5), "odom")
    old.fields = [f for f in old.fields if f.offset < 88]
    old.data, old.point_step, old.row_step = bytes(old.data)[:88], 88, 88
    before = _closure(cloud_to_candidates(old)[0], 5)
    assert before.geometry == 0 and before.relative is None and before.inliers == 80


def test_maps_without_keypoint_depths_still_load(tmp_path):
    """A map written before depths were stored (local_features without the column) loads, and
    its features read with depths None: its closures get rotation + direction, or none."""
    database = MapDatabase.create(4)
    database.record(local_features=FeatureSettings())
    features = make_verifier(FeatureSettings()).extract(render(route_pose(3.0), CAMERA)[0])
    database.add(np.eye(4, dtype=np.float32)[:1], [Entry(1, "map", (0, 0, 0))], None, [features])
    path = database.save(tmp_path / "map")
    with sqlite3.connect(path / "entries.sqlite") as db:  # as an older package wrote it
        db.execute("ALTER TABLE local_features DROP COLUMN depths")
    loaded = MapDatabase.load(path)
    assert loaded.manifest.camera is None
    assert loaded.local_features([0])[0].depths is None and len(loaded.local_features([0])[0])


# --- build_map and the node over real rclpy -------------------------------------------------------
@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    yield from ros_session(tmp_path_factory.mktemp("ros_log"), "geometry_test_client")


@pytest.fixture(scope="module")
def rgbd_map(tmp_path_factory):
    """A map of one lap of the 3-D world, built by build_map from its bag's CameraInfo and
    depth; and the same lap's bag without CameraInfo, mapped with --camera-info YAML."""
    root = tmp_path_factory.mktemp("rgbd")
    bag = root / "drive"
    write_loop_drive(bag, seed=5, laps=1)
    args = ["--bag", str(bag), "--image-topic", IMAGE_TOPIC, "--pose-topic", "/ground_truth"]
    args += ["--depth-topic", DEPTH_TOPIC]  # the mount from the bag's /tf_static
    args += ["--backbone", "efficientnet_lite0", "--num-clusters", "8", "--device", "cpu"]
    assert build_map.main([*args, "--out", str(root / "map"), "--no-progress"]) == 0
    return root, bag


def test_build_map_stores_the_camera_and_keypoint_depths(rgbd_map, tmp_path):
    root, bag = rgbd_map
    database = MapDatabase.load(root / "map")
    camera = database.manifest.camera  # CameraInfo from the bag, the mount from its /tf_static
    assert (camera.width, camera.height, camera.k, camera.d) == (320, 240, CAMERA.k, CAMERA.d)
    assert np.allclose(camera.to_base, MOUNT)
    stored = database.local_features([0, 10])
    assert all(f.depths is not None and np.isfinite(f.depths).mean() > 0.5 for f in stored.values())
    # a bag's CameraInfo missing: --camera-info FILE in the camera_calibration format
    calibration = tmp_path / "camera.yaml"
    calibration.write_text(
        yaml.safe_dump(
            {
                "image_width": 320,
                "image_height": 240,
                "camera_matrix": {"rows": 3, "cols": 3, "data": list(CAMERA.k)},
                "distortion_model": "plumb_bob",
                "distortion_coefficients": {"rows": 1, "cols": 5, "data": list(CAMERA.d)},
            }
        )
    )
    args = ["--bag", str(bag), "--image-topic", IMAGE_TOPIC, "--pose-topic", "/ground_truth"]
    args += ["--camera-info", str(calibration), "--camera-info-topic", "/none"]
    args += ["--backbone", "efficientnet_lite0", "--num-clusters", "8", "--device", "cpu"]
    assert build_map.main([*args, "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    camera = MapDatabase.load(tmp_path / "m").manifest.camera
    assert camera.k == CAMERA.k and camera.to_base == (0, 0, 0, -0.5, 0.5, -0.5, 0.5)  # REP 103
    assert MapDatabase.load(tmp_path / "m").local_features([0])[0].depths is None  # no depth


def test_the_node_publishes_a_metric_closure_and_a_pose_prior_from_it(ros, rgbd_map):
    """Localize mode: CameraInfo on camera_info, a revisit view on image; the best closure
    carries a metric relative pose and ~/pose_prior is the entry's pose composed with it."""
    root, _ = rgbd_map
    client_node, executor = ros
    node = LocalizerNode(
        parameter_overrides=[
            Parameter("node.map", value=str(root / "map")),
            Parameter("model.device", value="cpu"),
            Parameter("node.camera_to_base", value=" ".join(map(str, MOUNT))),
        ],
        cli_args=["--ros-args", "-r", "image:=/cam", "-r", "image/compressed:=/cam/compressed"]
        + ["-r", f"camera_info:={CAMERA_INFO_TOPIC}"],
    )
    executor.add_node(node)
    info = client_node.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, 10)
    try:
        client = Client(ros, namespace="/netvlad_localizer")
        msg = CameraInfo(width=320, height=240, distortion_model="plumb_bob")
        msg.k, msg.d = list(CAMERA.k), list(CAMERA.d)
        views = [route_pose(d, 0.5, 0.04) for d in (10.0, 31.0, 50.2)]  # half a metre over
        without = cloud_to_candidates(client.send(render(views[0], CAMERA)[0], 1_000_000_000))
        assert without["verified"].any() and not without["geometry"].any()  # no camera yet
        for _ in range(200):
            if node.cameras.camera_for(240, 320) is not None:
                break
            info.publish(msg)
            executor.spin_once(timeout_sec=0.05)
        assert node.statistics()["camera"].startswith("320x240 plumb_bob")  # in /diagnostics
        errors, prior_errors = [], []
        for n, truth in enumerate(views):
            stamp = (n + 2) * 1_000_000_000
            best = cloud_to_candidates(client.send(render(truth, CAMERA)[0], stamp))[0]
            assert best["verified"] == 1 and best["geometry"] == GEOMETRY_METRIC
            entry = Pose(
                [best["x"], best["y"], best["z"]], [best["qx"], best["qy"], best["qz"], best["qw"]]
            )
            relative = Pose(
                [best["rel_x"], best["rel_y"], best["rel_z"]],
                [best["rel_qx"], best["rel_qy"], best["rel_qz"], best["rel_qw"]],
            )
            errors.append(np.linalg.norm(relative.position - true_relative(entry, truth).position))
            covariance = from_upper_triangle(best["rel_cov"])
            assert np.all(np.linalg.eigvalsh(covariance) > 0) and 0.0 <= best["p_correct"] <= 1.0
            spin_until(executor, lambda: stamp in client.priors, 10.0, "the pose prior")
            prior = client.priors[stamp].pose
            position = [prior.pose.position.x, prior.pose.position.y, prior.pose.position.z]
            prior_errors.append(np.linalg.norm(position - truth.position))
            # the entry's own pose (the fallback prior) is about a metre off
            assert prior_errors[-1] < np.linalg.norm(entry.position - truth.position)
            assert np.sqrt(prior.covariance[0]) < 0.3  # metric: centimetres, not metres
        assert np.median(errors) < 0.1 and np.median(prior_errors) < 0.1, (errors, prior_errors)
    finally:
        executor.remove_node(node)
        node.close()
        node.destroy_node()


# --- the documented gtsam consumers run ---------------------------------------------------------
def _python_blocks(path) -> list[str]:
    text = (Path(__file__).resolve().parents[1] / path).read_text()
    return [block.split("```")[0] for block in text.split("```python\n")[1:]]


def test_the_documented_gtsam_snippets_add_the_published_relative_pose():
    """docs/slam.md's callback and README's lines, run on a real table: the factor they add
    measures the published relative pose with the published covariance."""
    import gtsam

    covariance = np.diag([0.0004, 0.0009, 0.0001, 1e-5, 2e-5, 3e-5])
    relative = RelativePose(Pose((0.5, -0.2, 0.0), (0, 0, 0.1, 0.995)), covariance, 2, 80)
    entry = Entry(3_000_000_000, "odom", (1.5, -2.0, 0.0))
    candidate = Candidate(7, 0.61, entry, True, 80, 80.61, relative, 0.97)
    msg = candidates_to_cloud([candidate], ns_to_stamp(9_000_000_000), "odom")
    callback = next(b for b in _python_blocks("docs/slam.md") if "def on_loop_closures" in b)
    graph = gtsam.NonlinearFactorGraph()
    scope = {"graph": graph, "key_of_stamp": lambda stamp: stamp // 1_000_000_000}
    exec(callback, scope)
    scope["on_loop_closures"](msg)
    readme = next(b for b in _python_blocks("README.md") if "rel_cov" in b)
    scope.update(rows=cloud_to_candidates(msg), map_key=3, query_key=9, np=np, gtsam=gtsam)
    exec(readme, scope)
    assert graph.size() == 2
    for factor in (graph.at(0), graph.at(1)):
        assert list(factor.keys()) == [3, 9]
        measured = factor.measured()
        assert np.allclose(measured.translation(), (0.5, -0.2, 0.0), atol=1e-9)
        gaussian = factor.noiseModel().noise()  # under the robust kernel
        assert np.allclose(gaussian.covariance(), covariance[np.ix_(SWAP, SWAP)], rtol=1e-5)


def test_a_monocular_closure_is_a_rotation_and_bearing_factor():
    """slam_eval's factor for geometry 1: zero at the truth, and it turns a node to the measured
    rotation and moves it onto the measured bearing (the scale comes from elsewhere)."""
    import gtsam

    from ros2_netvlad.evaluation.pose_graph import Closure, Link, SlamConfig, direction_factor

    first = Pose((0, 0, 0))
    second = Pose((1.0, 0.5, 0.0), Rotation.from_euler("z", 10, degrees=True).as_quat())
    truth = true_relative(first, second)
    unit = Pose(truth.position / np.linalg.norm(truth.position), truth.orientation)
    covariance = np.diag([1e-4, 1e-4, 1e-4, 1e-6, 1e-6, 1e-6])
    along = Rotation.from_quat(unit.orientation).inv().apply(unit.position)  # v = Rᵀ δt
    covariance[:3, :3] += 1e6 * np.outer(along, along)  # as published: no scale
    closure = Closure(5, 1, 60, 0.8, GEOMETRY_DIRECTION, unit, covariance)
    factor = direction_factor(Link(0, 1, closure), SlamConfig(kernel="none"))
    values = gtsam.Values()
    for key, pose in enumerate((first, second)):
        q = pose.orientation
        values.insert(
            key, gtsam.Pose3(gtsam.Rot3.Quaternion(q[3], *q[:3]), gtsam.Point3(*pose.position))
        )
    assert np.abs(factor.unwhitenedError(values)).max() < 1e-9
    graph = gtsam.NonlinearFactorGraph()
    graph.add(factor)
    graph.add(
        gtsam.PriorFactorPose3(0, values.atPose3(0), gtsam.noiseModel.Isotropic.Sigma(6, 1e-4))
    )
    # the second node's distance is known (|t| = 1.118 m), its direction and rotation are not
    distance = gtsam.noiseModel.Diagonal.Sigmas(np.r_[np.full(3, 10.0), 0.01, 10.0, 10.0])
    graph.add(
        gtsam.PriorFactorPose3(1, gtsam.Pose3(gtsam.Rot3(), gtsam.Point3(1.118, 0, 0)), distance)
    )
    start = gtsam.Values()
    start.insert(0, values.atPose3(0))
    start.insert(1, gtsam.Pose3(gtsam.Rot3(), gtsam.Point3(1.1, 0.2, 0.0)))
    solved = gtsam.LevenbergMarquardtOptimizer(graph, start).optimize().atPose3(1)
    assert np.degrees(abs(solved.rotation().yaw() - np.radians(10))) < 0.5
    bearing = solved.translation() / np.linalg.norm(solved.translation())
    assert np.degrees(np.arccos(bearing @ unit.position)) < 1.0
