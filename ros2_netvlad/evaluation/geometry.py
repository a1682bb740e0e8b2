"""How good the relative poses are: each estimate against the true relative pose (rotation,
translation direction and metric translation errors), the covariance's consistency (normalized
estimation error squared, NEES, and the share inside the 95 % ellipsoid), and the calibration of
``p_correct`` (expected calibration error)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation
from scipy.stats import chi2

from ros2_netvlad.geometry import Pose, vector_angle
from ros2_netvlad.localization.relative_pose import GEOMETRY_METRIC, RelativePose


@dataclass(frozen=True)
class PoseError:
    geometry: int
    rotation_deg: float
    direction_deg: float  # of the translation (what a monocular pose has)
    translation_m: float  # metric poses only (NaN otherwise)
    baseline_m: float  # the true distance between the two robot poses
    nees: float  # 6-DoF (metric) or 3-DoF rotation (monocular)


def true_relative(map_pose: Pose, query_pose: Pose) -> Pose:
    """The query's pose in the map entry's frame: T_map⁻¹ · T_query."""
    return map_pose.inverse().compose(query_pose)


def pose_error(estimate: RelativePose, truth: Pose) -> PoseError:
    """Errors of ``estimate`` with the error ξ defined as the covariance is: T_true = T·Exp(ξ)."""
    r_est = Rotation.from_quat(estimate.pose.orientation)
    r_true = Rotation.from_quat(truth.orientation)
    rotation = (r_est.inv() * r_true).as_rotvec()
    translation = r_est.inv().apply(truth.position - estimate.pose.position)
    baseline = float(np.linalg.norm(truth.position))
    t_est = estimate.pose.position
    direction = float(np.degrees(vector_angle(t_est, truth.position)))
    if estimate.geometry == GEOMETRY_METRIC:
        xi = np.r_[translation, rotation]
        nees = float(xi @ np.linalg.solve(estimate.covariance, xi))
        metric = float(np.linalg.norm(truth.position - t_est))
    else:
        nees = float(rotation @ np.linalg.solve(estimate.covariance[3:, 3:], rotation))
        metric = float("nan")
    return PoseError(
        estimate.geometry,
        float(np.degrees(np.linalg.norm(rotation))),
        direction,
        metric,
        baseline,
        nees,
    )


def consistency(errors: list[PoseError], dof: int) -> dict:
    """NEES mean (≈ dof when the covariance is right) and the share inside the 95 % ellipsoid."""
    nees = np.array([e.nees for e in errors])
    if not len(nees):
        return {"pairs": 0}
    return {
        "pairs": len(nees),
        "nees_mean": float(nees.mean()),
        "nees_median": float(np.median(nees)),
        "inside_95": float(np.mean(nees <= chi2.ppf(0.95, dof))),
    }


def accuracy(errors: list[PoseError]) -> dict:
    rotation = np.array([e.rotation_deg for e in errors])
    direction = np.array([e.direction_deg for e in errors])
    metric = [e for e in errors if e.geometry == GEOMETRY_METRIC]
    out = {
        "pairs": len(errors),
        "rotation_deg_median": float(np.median(rotation)) if len(rotation) else float("nan"),
        "rotation_deg_p90": float(np.percentile(rotation, 90)) if len(rotation) else float("nan"),
        "direction_deg_median": float(np.median(direction)) if len(direction) else float("nan"),
    }
    if metric:
        translation = np.array([e.translation_m for e in metric])
        baseline = np.array([e.baseline_m for e in metric])
        out["translation_m_median"] = float(np.median(translation))
        out["baseline_m_median"] = float(np.median(baseline))
        # the target: error ≤ 3 % of the baseline + 2 cm, as a median
        out["translation_budget_ratio_median"] = float(
            np.median(translation / (0.03 * baseline + 0.02))
        )
    return out


def expected_calibration_error(probabilities, labels, bins: int = 10) -> float:
    """Σ_b (n_b / n) · |mean p_b − share correct_b| over equal-width probability bins."""
    p, y = np.asarray(probabilities, float), np.asarray(labels, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    return float(total)
