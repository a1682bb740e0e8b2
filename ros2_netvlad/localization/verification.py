"""Geometric evidence that a query and a map image show the same place: mutual nearest-neighbour
matches of their local features (with the ratio test), then one epipolar geometry fitted by
MAGSAC++ (OpenCV USAC). The inlier count is the evidence; it is also what re-ranks a shortlist."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ros2_netvlad.model.local_features import LocalFeatures

MIN_MATCHES = 8  # the fundamental matrix needs eight correspondences
EPIPOLAR_THRESHOLD = 1.5  # pixels, in images of at most FeatureSettings.max_side
RATIO = 0.8  # Lowe's ratio test on descriptor distances


@dataclass(frozen=True)
class Evidence:
    matches: int  # mutual, ratio-tested correspondences
    inliers: int  # of those, consistent with one epipolar geometry


NO_EVIDENCE = Evidence(0, 0)


@dataclass(frozen=True)
class Prepared:
    """Features with their descriptors as float rows whose squared L2 distance is the matcher's
    distance (SIFT: as stored; ORB: one 0/1 float per bit, so it is the Hamming distance)."""

    features: LocalFeatures
    vectors: torch.Tensor
    squared_norms: torch.Tensor
    binary: bool  # then the squared L2 distance is already the (Hamming) distance


def prepare(features: LocalFeatures) -> Prepared:
    descriptors = features.descriptors
    binary = descriptors.shape[1] == 32
    vectors = torch.from_numpy(
        (np.unpackbits(descriptors, axis=1) if binary else descriptors).astype(np.float32)
    )
    return Prepared(features, vectors, (vectors * vectors).sum(dim=1), binary)


def evidence(query: Prepared, candidate: Prepared, needed: int = MIN_MATCHES) -> Evidence:
    """Prepare the query once per frame, each map entry's features once per shortlist. The
    geometry is fitted only when there are ``needed`` matches (inliers cannot outnumber them:
    with fewer the candidate cannot be verified, and its inliers are reported as 0)."""
    if len(query.features) < MIN_MATCHES or len(candidate.features) < MIN_MATCHES:
        return NO_EVIDENCE
    pairs = mutual_matches(query, candidate)
    if len(pairs) < max(needed, MIN_MATCHES):
        return Evidence(len(pairs), 0)
    src = query.features.keypoints[pairs[:, 0]]
    dst = candidate.features.keypoints[pairs[:, 1]]
    try:
        _, mask = cv2.findFundamentalMat(src, dst, cv2.USAC_MAGSAC, EPIPOLAR_THRESHOLD, 0.999, 1000)
    except cv2.error:  # degenerate point sets (e.g. all matches on a line)
        return Evidence(len(pairs), 0)
    return Evidence(len(pairs), 0 if mask is None else int(mask.sum()))


def mutual_matches(a: Prepared, b: Prepared) -> np.ndarray:
    """(i, j) rows where j is i's nearest neighbour passing the ratio test and i is j's nearest."""
    distances = torch.addmm(
        a.squared_norms[:, None] + b.squared_norms[None, :], a.vectors, b.vectors.T, alpha=-2.0
    )
    two = torch.topk(distances, 2, dim=1, largest=False)
    nearest = two.indices[:, 0]
    rows = torch.arange(len(distances))
    mutual = distances.argmin(dim=0)[nearest] == rows
    ratio = RATIO if a.binary else RATIO**2  # SIFT distances are squared here
    best, second = two.values.clamp(min=0.0).unbind(dim=1)  # rounding can dip below 0
    keep = mutual & (best < ratio * second)
    return torch.stack([rows[keep], nearest[keep]], dim=1).numpy()
