"""The pose graph that consumes the node's loop closures: odometry between-factors and one robust
factor per closure — its published relative pose and covariance (metric), rotation + bearing
(monocular), or the identity ("same place") — optimized by gtsam Levenberg-Marquardt in two
rounds. ``evaluation/slam.py`` reads the recordings, runs it and scores it."""

from __future__ import annotations

from dataclasses import dataclass

import gtsam
import numpy as np

from ros2_netvlad.errors import InputError
from ros2_netvlad.geometry import Pose, perpendicular_basis

KERNELS = ("cauchy", "dcs", "huber", "none")
FACTORS = ("relative", "identity")


@dataclass(frozen=True)
class Closure:
    query_ns: int  # header stamp of the frame that recognised the place
    map_ns: int  # stamp of the map entry it matched
    inliers: int
    score: float
    geometry: int = 0  # 0 none, 1 rotation + direction, 2 metric
    relative: Pose | None = None  # the query robot in the map entry's robot frame
    covariance: np.ndarray | None = None  # 6×6, ROS order, right perturbation
    acceptance: int = 1  # 1 its own inliers, 2 a weak sequence, 3 odometry tracking


@dataclass(frozen=True)
class Link:
    """A loop-closure factor between graph nodes ``earlier`` (the map entry) and ``later``."""

    earlier: int
    later: int
    closure: Closure


@dataclass(frozen=True)
class SlamConfig:
    loop_sigma_xy: float = 4.0  # m: how far apart two views of "the same place" may be taken
    loop_sigma_z: float = 0.5
    loop_sigma_yaw: float = 0.5  # rad
    loop_sigma_tilt: float = 0.1  # rad (roll, pitch)
    odom_sigma_per_metre: float = 0.05  # translation sigma grows with the step length
    odom_sigma_min: float = 0.02  # m
    odom_sigma_rot: float = 0.02  # rad per step
    kernel: str = "cauchy"
    kernel_width: float = 1.0  # in sigmas of the whitened residual
    factors: str = "relative"  # the closures' relative poses where they have them, or identity

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise InputError(f"kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        if self.factors not in FACTORS:
            raise InputError(f"factors must be one of {', '.join(FACTORS)}, got {self.factors!r}")


# --- the graph ----------------------------------------------------------------------------------
def _pose3(pose: Pose) -> gtsam.Pose3:
    x, y, z, w = pose.orientation
    return gtsam.Pose3(gtsam.Rot3.Quaternion(w, x, y, z), gtsam.Point3(*pose.position))


def _robust(base, config: SlamConfig):
    estimators = {
        "cauchy": gtsam.noiseModel.mEstimator.Cauchy,
        "dcs": gtsam.noiseModel.mEstimator.DCS,
        "huber": gtsam.noiseModel.mEstimator.Huber,
    }
    if config.kernel == "none":
        return base
    return gtsam.noiseModel.Robust.Create(
        estimators[config.kernel].Create(config.kernel_width), base
    )


def optimize(
    odometry: list[Pose], links: list[Link], config: SlamConfig = SlamConfig()
) -> np.ndarray:
    """N×3 optimized positions: odometry chain + one robust loop factor per link.

    Graduated in two rounds: the drifted start puts a true closure many of its own (tight)
    sigmas away, where the robust kernel would all but ignore it; so the closures are first
    loosened by the identity factor's covariance, then optimized again, from there, as
    published."""
    poses = [_pose3(p) for p in odometry]
    estimate = gtsam.Values()
    for i, pose in enumerate(poses):
        estimate.insert(i, pose)
    for loosen in (True, False):
        graph = _odometry_graph(poses, config)
        for link in links:
            graph.add(_loop(link, config, loosen))
        params = gtsam.LevenbergMarquardtParams()
        params.setMaxIterations(200)
        estimate = gtsam.LevenbergMarquardtOptimizer(graph, estimate, params).optimize()
    return np.array([estimate.atPose3(i).translation() for i in range(len(poses))])


def _odometry_graph(poses: list, config: SlamConfig) -> gtsam.NonlinearFactorGraph:
    graph = gtsam.NonlinearFactorGraph()
    anchor = gtsam.noiseModel.Diagonal.Sigmas(np.full(6, 1e-3))
    graph.add(gtsam.PriorFactorPose3(0, poses[0], anchor))
    for i in range(1, len(poses)):
        step = poses[i - 1].between(poses[i])
        sigma_t = max(
            config.odom_sigma_per_metre * np.linalg.norm(step.translation()), config.odom_sigma_min
        )
        sigmas = np.r_[np.full(3, config.odom_sigma_rot), np.full(3, sigma_t)]
        graph.add(
            gtsam.BetweenFactorPose3(i - 1, i, step, gtsam.noiseModel.Diagonal.Sigmas(sigmas))
        )
    return graph


def _loop(link: Link, config: SlamConfig, loosen: bool):
    closure = link.closure
    if config.factors == "relative" and closure.geometry == 1:
        return direction_factor(link, config, loosen)
    measured, noise = loop_factor(closure, config, loosen)
    return gtsam.BetweenFactorPose3(link.earlier, link.later, measured, _robust(noise, config))


def direction_factor(link: Link, config: SlamConfig, loosen: bool = False):
    """A monocular closure: the relative rotation and the translation's **direction** (a bearing,
    scale-free), 5 residuals: Log(R_meas⁻¹ R) and the unit direction's offset in the plane
    perpendicular to the measured one, with the published covariance's blocks (the along-track
    10⁶ m² drops out of the bearing). Jacobians by central differences."""
    closure = link.closure
    rotation = _pose3(closure.relative).rotation()
    direction = closure.relative.position / np.linalg.norm(closure.relative.position)
    basis = perpendicular_basis(direction)
    turn = rotation.matrix()
    covariance = np.zeros((5, 5))
    covariance[:3, :3] = closure.covariance[3:, 3:]
    covariance[3:, 3:] = basis.T @ turn @ closure.covariance[:3, :3] @ turn.T @ basis
    if loosen:  # the first round: as loose as "same place" (tilt/yaw; a bearing of ~0.5 rad)
        sigmas = [config.loop_sigma_tilt, config.loop_sigma_tilt, config.loop_sigma_yaw]
        covariance += np.diag(np.r_[np.square(sigmas), 0.25, 0.25])

    def residual(first: gtsam.Pose3, second: gtsam.Pose3) -> np.ndarray:
        relative = first.between(second)
        turned = gtsam.Rot3.Logmap(rotation.between(relative.rotation()))
        t = relative.translation()
        norm = np.linalg.norm(t)
        bearing = basis.T @ (t / norm - direction) if norm > 1e-9 else np.zeros(2)
        return np.r_[turned, bearing]

    def error(factor, values, jacobians):
        first, second = values.atPose3(link.earlier), values.atPose3(link.later)
        if jacobians is not None:
            for n, pose in enumerate((first, second)):
                columns = []
                for k in range(6):
                    step = np.zeros(6)
                    step[k] = 1e-6
                    plus, minus = pose.retract(step), pose.retract(-step)
                    pair_plus = (plus, second) if n == 0 else (first, plus)
                    pair_minus = (minus, second) if n == 0 else (first, minus)
                    columns.append((residual(*pair_plus) - residual(*pair_minus)) / 2e-6)
                jacobians[n] = np.stack(columns, axis=1)
        return residual(first, second)

    noise = _robust(gtsam.noiseModel.Gaussian.Covariance(covariance), config)
    return gtsam.CustomFactor(noise, [link.earlier, link.later], error)


def loop_factor(closure: Closure, config: SlamConfig, loosen: bool = False):
    """(measured relative Pose3, Gaussian noise model) of one closure. gtsam's Pose3 tangent is
    (rx ry rz x y z) on the right, the published covariance is ROS order on the right: only the
    blocks swap. ``loosen`` adds the identity factor's variances (the first round)."""
    identity_sigmas = np.array(
        [config.loop_sigma_tilt, config.loop_sigma_tilt, config.loop_sigma_yaw]
        + [config.loop_sigma_xy, config.loop_sigma_xy, config.loop_sigma_z]
    )
    if config.factors == "identity" or closure.relative is None:
        return gtsam.Pose3(), gtsam.noiseModel.Diagonal.Sigmas(identity_sigmas)
    swap = np.r_[3:6, 0:3]
    covariance = closure.covariance[np.ix_(swap, swap)]
    measured = _pose3(closure.relative)
    if loosen:
        covariance = covariance + np.diag(identity_sigmas**2)
    return measured, gtsam.noiseModel.Gaussian.Covariance(covariance)
