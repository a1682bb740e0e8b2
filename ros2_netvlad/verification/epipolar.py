"""Epipolar verification with OpenCV SIFT or ORB: mutual nearest-neighbour matches of the local
features (with the ratio test), then one epipolar geometry fitted by MAGSAC++ (OpenCV USAC). The
inlier count is the evidence; it is also what re-ranks a shortlist.

``mutual_matches`` and ``epipolar_evidence`` work on any float descriptor rows, so a new verifier
with its own features can reuse them."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ros2_netvlad.camera import image_scale
from ros2_netvlad.verification.features import Codec, LocalFeatures

MIN_MATCHES = 8  # the fundamental matrix needs eight correspondences
EPIPOLAR_THRESHOLD = 1.5  # pixels, in images of at most FeatureSettings.max_side
RATIO = 0.8  # Lowe's ratio test on descriptor distances


@dataclass(frozen=True)
class Evidence:
    matches: int  # mutual, ratio-tested correspondences
    inliers: int  # of those, consistent with one epipolar geometry
    # (query keypoint, candidate keypoint) index rows of the inliers: what a relative pose is
    # solved from (None when the verifier does not say)
    pairs: np.ndarray | None = field(default=None, compare=False)


NO_EVIDENCE = Evidence(0, 0)


@dataclass(frozen=True)
class Prepared:
    """Features with their descriptors as float rows whose squared L2 distance is the matcher's
    distance (SIFT: as stored; ORB: one 0/1 float per bit, so it is the Hamming distance)."""

    features: LocalFeatures
    vectors: torch.Tensor
    squared_norms: torch.Tensor
    ratio: float  # applied to squared distances


def prepared(features: LocalFeatures, vectors: np.ndarray, ratio: float = RATIO) -> Prepared:
    """``vectors`` (N×D float) are compared by squared L2 distance; ``ratio`` is Lowe's ratio on
    plain distances."""
    rows = torch.from_numpy(np.ascontiguousarray(vectors, np.float32))
    return Prepared(features, rows, (rows * rows).sum(dim=1), ratio**2)


def epipolar_evidence(query: Prepared, candidate: Prepared, needed: int = MIN_MATCHES) -> Evidence:
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
    if mask is None:
        return Evidence(len(pairs), 0)
    inliers = pairs[mask.ravel() > 0]
    return Evidence(len(pairs), len(inliers), inliers)


def mutual_matches(a: Prepared, b: Prepared) -> np.ndarray:
    """(i, j) rows where j is i's nearest neighbour passing the ratio test and i is j's nearest."""
    distances = torch.addmm(
        a.squared_norms[:, None] + b.squared_norms[None, :], a.vectors, b.vectors.T, alpha=-2.0
    )
    two = torch.topk(distances, 2, dim=1, largest=False)
    nearest = two.indices[:, 0]
    rows = torch.arange(len(distances))
    mutual = distances.argmin(dim=0)[nearest] == rows
    best, second = two.values.clamp(min=0.0).unbind(dim=1)  # rounding can dip below 0
    keep = mutual & (best < a.ratio * second)
    return torch.stack([rows[keep], nearest[keep]], dim=1).numpy()


def root_sift(rows: np.ndarray) -> np.ndarray:
    """RootSIFT: each row L1-normalised, then its square root (unit L2 norm)."""
    values = rows.astype(np.float32)
    return np.sqrt(values / np.maximum(values.sum(axis=1, keepdims=True), 1e-12))


class OpenCVVerifier:
    """SIFT (128 uint8 values) or ORB (32 bytes, matched by Hamming distance). OpenCV detectors
    are not thread-safe: one verifier per worker."""

    def __init__(self, settings, binary: bool) -> None:
        self.settings, self.binary = settings, binary
        self.codec = Codec("uint8", 32 if binary else 128)
        create = cv2.ORB_create if binary else cv2.SIFT_create
        self._detector = create(nfeatures=settings.max_features)

    def extract(self, rgb: np.ndarray) -> LocalFeatures:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        h, w = gray.shape[:2]
        scale = image_scale(w, h, self.settings.max_side, self.settings.min_side)
        if scale != 1.0:
            smaller = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=smaller)
        keypoints, descriptors = self._detector.detectAndCompute(gray, None)
        if descriptors is None or not keypoints:
            return LocalFeatures.empty(self.codec)
        points = np.float32([k.pt for k in keypoints])
        # OpenCV's SIFT values are integers 0..255 held in float32: uint8 storage is lossless
        return LocalFeatures(points, np.clip(descriptors, 0, 255).astype(np.uint8))

    def prepare(self, features: LocalFeatures) -> Prepared:
        rows = features.descriptors
        # ORB: one 0/1 per bit, so squared L2 is the Hamming distance and its ratio is plain
        if self.binary:
            return prepared(features, np.unpackbits(rows, axis=1), RATIO**0.5)
        if self.settings.root:
            return prepared(features, root_sift(rows), RATIO)
        return prepared(features, rows, RATIO)

    def evidence(self, query: Prepared, candidate: Prepared, needed: int) -> Evidence:
        return epipolar_evidence(query, candidate, needed)
