"""Verified view pairs of the 3-D world with their true relative poses: a revisit frame (offset,
turned, under other light) against the first lap's nearest frames, through the same verifier
and relative-pose code the localizer runs. What the geometry tests and benchmark score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ros2_netvlad.camera import Camera
from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.demo.loop_drive import under_other_light
from ros2_netvlad.demo.world3d import render, route_length, route_pose, world_camera
from ros2_netvlad.geometry import Pose
from ros2_netvlad.localization.relative_pose import RelativePose, verified_pair_pose
from ros2_netvlad.verification.features import FeatureSettings
from ros2_netvlad.verification.registry import make_verifier

MIN_INLIERS = 30  # localizer.min_inliers' default


@dataclass(frozen=True)
class WorldPair:
    map_pose: Pose  # true base poses
    query_pose: Pose
    inliers: int
    estimate: RelativePose | None


def world_pairs(
    queries: int,
    *,
    seed: int = 0,
    camera: Camera | None = None,
    depth: bool = True,
    neighbours: int = 3,
    step: float = 1.5,
) -> list[WorldPair]:
    """``queries`` revisit frames at random places along the route, each against the first lap's
    ``neighbours`` nearest frames (``step`` apart); pairs that verify (≥ MIN_INLIERS) only."""
    camera = camera or world_camera()
    rng = np.random.default_rng(seed)
    settings = FeatureSettings(root=LocalizerConfig.root_sift)  # matched as the localizer does
    verifier = make_verifier(settings)
    out = []
    for _ in range(queries):
        along = rng.uniform(0, route_length())
        query_pose = route_pose(along + 0.0, rng.uniform(-0.6, 0.6), rng.uniform(-0.08, 0.08))
        query_rgb = under_other_light(render(query_pose, camera)[0], rng)
        query = verifier.extract(query_rgb)
        prepared = verifier.prepare(query)
        nearest = np.round(along / step) * step
        for k in range(neighbours):
            distance = nearest + step * (k - neighbours // 2)
            map_pose = route_pose(distance)
            map_rgb, map_depth = render(map_pose, camera)
            found = verifier.extract(map_rgb)
            if depth:
                found = found.with_depths(map_depth, camera, settings)
            evidence = verifier.evidence(prepared, verifier.prepare(found), MIN_INLIERS)
            if evidence.inliers < MIN_INLIERS:
                continue
            estimate = verified_pair_pose(evidence, query, found, camera, camera, settings)
            out.append(WorldPair(map_pose, query_pose, evidence.inliers, estimate))
    return out
