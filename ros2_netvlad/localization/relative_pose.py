"""The relative pose of a verified loop closure, from its inlier correspondences, with a
covariance from the inlier geometry.

Conventions (docs/slam.md): the relative pose is the **query's robot pose expressed in the matched
map entry's robot frame**, T = T_map⁻¹ · T_query, which is what ``BetweenFactor(map, query, T)``
takes. Its covariance is 6×6 in ROS order (x y z rx ry rz) on the right: T_true = T · Exp(ξ),
ξ ~ N(0, Σ), i.e. in the query robot's own frame.

- metric (``geometry = 2``): the map entry stores a depth per keypoint, so its keypoints are 3-D
  points; PnP + RANSAC (OpenCV USAC MAGSAC++) on the query's undistorted pixels, refined by
  Levenberg-Marquardt on the inliers.
- rotation + direction (``geometry = 1``, monocular): the essential matrix on undistorted,
  normalized points, the cheirality check (recoverPose), refined on the Sampson error; where one
  plane explains the pairs, that plane's homography if it decomposes one way only, else no pose.
  The translation is a unit vector (scale unknown): its covariance says so with a variance of
  ``SCALE_UNKNOWN`` m² along it, and the camera's offset on the robot is left out of it.

The covariance is σ²(JᵀJ)⁻¹ of the reprojection (or Sampson) residuals at the solution, σ² their
variance: the query's pixel noise. For a metric pose a bootstrap over the inliers is added (the
map side's noise and the uneven quality of the points show as the answer's spread over resampled
point sets); the monocular one is doubled (both images' noise). benchmarks/geometry.py checks
their consistency (NEES) on the 3-D world."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from ros2_netvlad.camera import Camera
from ros2_netvlad.geometry import Pose, perpendicular_basis
from ros2_netvlad.verification.features import FeatureSettings, LocalFeatures

GEOMETRY_NONE, GEOMETRY_DIRECTION, GEOMETRY_METRIC = 0, 1, 2
MIN_DIRECTION_POINTS = 12  # the essential matrix needs 5; a covariance wants many more
MIN_METRIC_POINTS = 12  # keypoints with depth
PIXEL_THRESHOLD = 2.0  # RANSAC threshold in pixels of the full-size image
OFF_PLANE = 12  # pairs off the dominant plane that the essential matrix needs
AMBIGUOUS = 0.75  # a second plane decomposition this good leaves the pose undetermined
SCALE_UNKNOWN = 1.0e6  # m², variance along a monocular translation direction
BOOTSTRAP = 40  # resampled inlier sets for the metric covariance
# Monocular: the Sampson Hessian counts one image's noise, doubled for the second's (a bootstrap,
# as metric poses have, cost ~15 ms there and did not shorten the tail). benchmarks/geometry.py
# checks both on the 3-D world.
DIRECTION_INFLATION = 2.0


@dataclass(frozen=True)
class RelativePose:
    pose: Pose  # the query robot in the map entry's robot frame
    covariance: np.ndarray  # 6×6, ROS order, right perturbation
    geometry: int  # GEOMETRY_DIRECTION or GEOMETRY_METRIC
    inliers: int  # correspondences consistent with it


@dataclass(frozen=True)
class Correspondences:
    """Matched keypoints of one verified pair, in full-size pixels of each camera."""

    query: np.ndarray  # N×2
    map: np.ndarray  # N×2
    map_depth: np.ndarray | None  # N depths (m) along the map camera's optical axis; NaN = none


def relative_pose(
    pairs: Correspondences, query_camera: Camera, map_camera: Camera
) -> RelativePose | None:
    """Metric where enough map keypoints have depth, else rotation + direction; None when the
    correspondences do not determine a pose."""
    query = query_camera.normalized(pairs.query)
    mapped = map_camera.normalized(pairs.map)
    focal = min(query_camera.focal, map_camera.focal)
    depth = pairs.map_depth
    has_depth = np.zeros(len(query), bool) if depth is None else np.isfinite(depth) & (depth > 0)
    if has_depth.sum() >= MIN_METRIC_POINTS:
        points = np.c_[mapped[has_depth], np.ones(has_depth.sum())] * depth[has_depth, None]
        solved = _metric(points, query[has_depth], focal)
        if solved is not None:
            return _in_robot_frames(*solved, GEOMETRY_METRIC, query_camera, map_camera)
    if len(query) >= MIN_DIRECTION_POINTS:
        solved = _direction(mapped, query, focal)
        if solved is not None:
            return _in_robot_frames(*solved, GEOMETRY_DIRECTION, query_camera, map_camera)
    return None


def verified_pair_pose(
    evidence, query: LocalFeatures, found: LocalFeatures, query_camera: Camera,
    map_camera: Camera, settings: FeatureSettings,
) -> RelativePose | None:  # fmt: skip
    """The relative pose from a verifier's evidence (its inlier ``pairs``) between the query's
    features and a map entry's (with their stored depths, if any), both found with ``settings``."""
    pairs = getattr(evidence, "pairs", None)
    if pairs is None or not len(pairs):
        return None
    depth = None if found.depths is None else found.depths[pairs[:, 1]]
    correspondences = Correspondences(
        settings.pixels(query.keypoints[pairs[:, 0]], query_camera),
        settings.pixels(found.keypoints[pairs[:, 1]], map_camera),
        depth,
    )
    return relative_pose(correspondences, query_camera, map_camera)


# --- metric: PnP ----------------------------------------------------------------------------------
def _metric(points: np.ndarray, query: np.ndarray, focal: float):
    """(query camera in map camera frame, covariance, inliers) from 3-D map points and the
    query's normalized rays; pixels scaled by ``focal`` keep OpenCV's thresholds meaningful."""
    k = np.diag([focal, focal, 1.0])
    pixels = query * focal
    try:
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(
            points, pixels, k, None, iterationsCount=1000, reprojectionError=PIXEL_THRESHOLD,
            confidence=0.999, flags=cv2.USAC_MAGSAC,
        )  # fmt: skip
    except cv2.error:
        return None
    if not ok or inliers is None or len(inliers) < MIN_METRIC_POINTS:
        return None
    inliers = inliers.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(points[inliers], pixels[inliers], k, None, rvec, tvec)
    rotation = cv2.Rodrigues(rvec)[0]  # map camera coordinates → query camera coordinates
    map_to_query = (rotation, tvec.ravel())
    covariance = _pnp_covariance(points[inliers], pixels[inliers], map_to_query, focal)
    if covariance is None:
        return None
    rotation_q, position_q = rotation.T, -rotation.T @ tvec.ravel()  # the query camera
    return (rotation_q, position_q), covariance, len(inliers)


def _pnp_covariance(points, pixels, map_to_query, focal) -> np.ndarray | None:
    """σ²(JᵀJ)⁻¹ of the reprojection residuals (the query's pixel noise) plus a bootstrap: the
    spread of the Gauss-Newton step over resampled inlier sets, which shows the map side's noise
    and uneven point quality that the Hessian does not see. A map keypoint's error moves its 3-D
    point across the ray, which the query sees scaled by z_map / z_query: each residual is
    weighted by its variance 1 + (z_map / z_query)² (in units of one image's pixel noise)."""
    rotation, translation = map_to_query
    in_query = points @ rotation.T + translation
    weight = np.repeat(1.0 / np.sqrt(1.0 + (points[:, 2] / in_query[:, 2]) ** 2), 2)

    def residuals(xi: np.ndarray) -> np.ndarray:
        # T_true = T·Exp(ξ) for the query camera pose T, so map→query becomes Exp(-ξ)·(map→query)
        moved = in_query @ _rot(-xi[3:]).T - xi[:3]
        return weight * (focal * moved[:, :2] / moved[:, 2:3] - pixels).ravel()

    hessian = _gauss_newton_covariance(residuals, 6)
    if hessian is None:
        return None
    return hessian + _bootstrap(_jacobian(residuals, 6), residuals(np.zeros(6)), len(points))


def _bootstrap(jacobian: np.ndarray, residuals: np.ndarray, count: int) -> np.ndarray:
    """Covariance of the linearized least-squares step over BOOTSTRAP resampled point sets (each
    point is two rows); the same pair always draws the same sets."""
    rng = np.random.default_rng(count)
    steps = []
    for _ in range(BOOTSTRAP):
        rows = (2 * rng.integers(0, count, count)[:, None] + np.arange(2)).ravel()
        steps.append(np.linalg.lstsq(jacobian[rows], -residuals[rows], rcond=None)[0])
    return np.cov(np.array(steps).T)


# --- rotation + direction: the essential matrix ---------------------------------------------------
def _direction(mapped: np.ndarray, query: np.ndarray, focal: float):
    """Rotation and translation direction, from the essential matrix, or from the homography
    when one plane explains the pairs (the essential matrix is ambiguous there); a planar pair
    whose homography decomposes two ways equally well is given no pose (as ORB-SLAM does)."""
    k = np.diag([focal, focal, 1.0])
    a, b = mapped * focal, query * focal  # pixel units keep OpenCV's thresholds meaningful
    try:
        e, mask = cv2.findEssentialMat(a, b, k, cv2.USAC_MAGSAC, 0.9999, PIXEL_THRESHOLD, 10000)
        if e is None or e.shape != (3, 3):
            return None
        count, rotation, translation, mask = cv2.recoverPose(e, a, b, k, mask=mask)
        inliers = mask.ravel() > 0
        if count < MIN_DIRECTION_POINTS:
            return None
        h, h_mask = cv2.findHomography(a[inliers], b[inliers], cv2.USAC_MAGSAC, PIXEL_THRESHOLD)
    except cv2.error:
        return None
    off_plane = 0 if h is None else int(np.sum(h_mask.ravel() == 0))
    if off_plane < OFF_PLANE:  # one plane: the essential matrix is not determined by it
        solved = _from_homography(h, k, a[inliers], b[inliers]) if h is not None else None
        if solved is None:
            return None
        rotation, translation = solved
    # map camera → query camera is (R, t); the query camera in the map camera's frame:
    rotation_q, direction = rotation.T, -rotation.T @ translation.ravel()
    rotation_q, direction, covariance = _refine_direction(
        rotation_q, direction / np.linalg.norm(direction), mapped[inliers], query[inliers]
    )
    if covariance is None:
        return None
    return (rotation_q, direction), covariance * DIRECTION_INFLATION, int(inliers.sum())


def _from_homography(h, k, a, b):
    """The one decomposition of a plane's homography with the points in front of both cameras,
    clearly ahead of the second best (else None)."""
    count, rotations, translations, normals = cv2.decomposeHomographyMat(h, k)
    scores = []
    for rotation, translation in zip(rotations, translations):
        scores.append(_in_front(rotation, translation.ravel(), k, a, b))
    order = np.argsort(scores)[::-1]
    best, second = scores[order[0]], scores[order[1]] if len(order) > 1 else 0
    if best < MIN_DIRECTION_POINTS or second > AMBIGUOUS * best:
        return None
    return rotations[order[0]], translations[order[0]]


def _in_front(rotation, translation, k, a, b) -> int:
    """Pairs that triangulate in front of both cameras (cheirality)."""
    if np.linalg.norm(translation) < 1e-9:
        return 0
    first = k @ np.c_[np.eye(3), np.zeros(3)]
    second = k @ np.c_[rotation, translation / np.linalg.norm(translation)]
    points = cv2.triangulatePoints(first, second, a.T.astype(float), b.T.astype(float))
    points = points[:3] / points[3]
    depth_first = points[2]
    depth_second = (rotation @ points + translation[:, None] / np.linalg.norm(translation))[2]
    return int(np.sum((depth_first > 0) & (depth_second > 0)))


def _sampson(rotation_q, direction, mapped, query) -> np.ndarray:
    """Sampson distances (normalized units) of the pairs under the query camera pose
    (rotation_q, direction) in the map camera's frame."""
    r = rotation_q.T  # map → query
    t = -r @ direction
    e = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]]) @ r
    x1 = np.c_[mapped, np.ones(len(mapped))]
    x2 = np.c_[query, np.ones(len(query))]
    ex1, etx2 = x1 @ e.T, x2 @ e
    numerator = np.sum(x2 * ex1, axis=1)
    return numerator / np.sqrt(ex1[:, 0] ** 2 + ex1[:, 1] ** 2 + etx2[:, 0] ** 2 + etx2[:, 1] ** 2)


def _refine_direction(rotation_q, direction, mapped, query, iterations: int = 3):
    """Gauss-Newton on the Sampson error over rotation (3) and direction (2), then the 6×6
    covariance of the pose with the scale left unknown."""

    def moved(p: np.ndarray):
        d = direction + perpendicular_basis(direction) @ p[3:]
        return rotation_q @ _rot(p[:3]), d / np.linalg.norm(d)

    for _ in range(iterations):
        residuals = lambda p: _sampson(*moved(p), mapped, query)  # noqa: E731
        jacobian = _jacobian(residuals, 5)
        step = np.linalg.lstsq(jacobian, -residuals(np.zeros(5)), rcond=None)[0]
        rotation_q, direction = moved(step)
    covariance5 = _gauss_newton_covariance(lambda p: _sampson(*moved(p), mapped, query), 5)
    if covariance5 is None:
        return rotation_q, direction, None
    # translation tangent of the right perturbation: v = Rᵀ δt, δt = B α (+ scale along d)
    lift = np.zeros((6, 5))
    lift[:3, 3:] = rotation_q.T @ perpendicular_basis(direction)
    lift[3:, :3] = np.eye(3)
    covariance = lift @ covariance5 @ lift.T
    along = rotation_q.T @ direction
    covariance[:3, :3] += SCALE_UNKNOWN * np.outer(along, along)
    return rotation_q, direction, covariance


# --- shared ---------------------------------------------------------------------------------------
def _rot(rotation_vector: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(rotation_vector).as_matrix()


def _jacobian(residuals, n: int, step: float = 1e-6) -> np.ndarray:
    columns = []
    for i in range(n):
        delta = np.zeros(n)
        delta[i] = step
        columns.append((residuals(delta) - residuals(-delta)) / (2 * step))
    return np.stack(columns, axis=1)


def _gauss_newton_covariance(residuals, n: int) -> np.ndarray | None:
    """σ²(JᵀJ)⁻¹ at the solution, σ² = Σr² / (m − n); None when the geometry is degenerate."""
    r = residuals(np.zeros(n))
    if len(r) <= n:
        return None
    jacobian = _jacobian(residuals, n)
    information = jacobian.T @ jacobian
    if np.linalg.cond(information) > 1e12:
        return None
    variance = float(r @ r) / (len(r) - n)
    return variance * np.linalg.inv(information)


def adjoint(matrix: np.ndarray) -> np.ndarray:
    """Adjoint of a rigid transform, ROS order (translation, rotation): Exp(Ad ξ) = T Exp(ξ) T⁻¹."""
    rotation, t = matrix[:3, :3], matrix[:3, 3]
    skew = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    out = np.zeros((6, 6))
    out[:3, :3] = out[3:, 3:] = rotation
    out[:3, 3:] = skew @ rotation
    return out


def _in_robot_frames(camera_pose, covariance, inliers, kind, query_camera, map_camera):
    """The query camera's pose in the map camera's frame → the query robot in the map robot's:
    T = B_map · T_cam · B_query⁻¹ (B: optical frame in the robot frame), Σ = Ad(B_q) Σ Ad(B_q)ᵀ.
    A monocular pose has no scale, so only the extrinsics' rotations apply to it."""
    relative = np.eye(4)
    relative[:3, :3], relative[:3, 3] = camera_pose
    b_map = Pose(map_camera.to_base[:3], map_camera.to_base[3:]).matrix()
    b_query = Pose(query_camera.to_base[:3], query_camera.to_base[3:]).matrix()
    if kind == GEOMETRY_DIRECTION:
        b_map[:3, 3] = b_query[:3, 3] = 0.0
    in_robots = b_map @ relative @ np.linalg.inv(b_query)
    spread = adjoint(b_query)
    return RelativePose(Pose.from_matrix(in_robots), spread @ covariance @ spread.T, kind, inliers)


def compose_prior(entry: Pose, relative: RelativePose) -> tuple[Pose, np.ndarray]:
    """The query robot's pose in the map frame, T_entry · T_rel, with its covariance in the map
    frame as PoseWithCovariance wants it (position and rotation errors about the map's axes):
    Σ_map = diag(R, R) Σ diag(R, R)ᵀ, R the composed orientation. A monocular relative pose
    corrects the rotation only: the position stays the entry's."""
    matrix = entry.matrix() @ relative.pose.matrix()
    if relative.geometry == GEOMETRY_DIRECTION:
        matrix[:3, 3] = entry.position
    rotation = np.kron(np.eye(2), matrix[:3, :3])
    return Pose.from_matrix(matrix), rotation @ relative.covariance @ rotation.T
