"""The pose prior of a frame: where its accepted loop closures put the robot in the map, with a
covariance — from the best closure's relative pose where it has one, else from the spread of
the candidates that agree with it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.geometry import Pose, angle_between, average_quaternions
from ros2_netvlad.localization.relative_pose import (
    GEOMETRY_DIRECTION,
    GEOMETRY_NONE,
    compose_prior,
)


@dataclass(frozen=True)
class PosePrior:
    pose: Pose
    covariance: np.ndarray  # 6×6, (x, y, z, rot x, rot y, rot z)
    support: int  # candidates that agreed
    geometry: int = GEOMETRY_NONE  # what placed it: the best closure's relative pose, or none


def pose_prior(candidates: list, config: LocalizerConfig) -> PosePrior:
    """``candidates``: the frame's accepted ones, best first. Metric relative pose: its pose and
    covariance; monocular: its rotation only; none: the spread of the agreeing candidates."""
    spread = _spread_prior(candidates, config)
    best = candidates[0]
    if best.relative is None:
        return spread
    pose, covariance = compose_prior(
        Pose(best.entry.position, best.entry.orientation), best.relative
    )
    if best.relative.geometry == GEOMETRY_DIRECTION:  # no scale: the position is the entry's
        covariance[:3, :] = covariance[:, :3] = 0.0
        covariance[:3, :3] = spread.covariance[:3, :3]
    return PosePrior(pose, covariance, spread.support, best.relative.geometry)


def _spread_prior(candidates: list, config: LocalizerConfig) -> PosePrior:
    best = candidates[0].position
    support = [c for c in candidates if np.linalg.norm(c.position - best) <= config.prior_radius]
    weights = np.array([max(c.score, 1e-6) for c in support])
    weights = weights / weights.sum()
    positions = np.array([c.position for c in support])
    orientations = np.array([c.entry.orientation for c in support])
    mean_position = weights @ positions
    mean_orientation = average_quaternions(orientations, weights)
    # spread of the agreeing candidates, inflated when their scores are low, never below the floor
    confidence = max(float(np.mean([c.score for c in support])), 0.05)
    offsets = positions - mean_position
    covariance = np.zeros((6, 6))
    covariance[:3, :3] = (offsets * weights[:, None]).T @ offsets
    covariance[:3, :3] += np.eye(3) * config.position_variance_floor / confidence
    angles = np.array([angle_between(q, mean_orientation) for q in orientations])
    rotation_variance = float(weights @ angles**2) + config.orientation_variance_floor / confidence
    covariance[3:, 3:] = np.eye(3) * rotation_variance
    return PosePrior(Pose(mean_position, mean_orientation), covariance, len(support))
