"""Geometric verification of a candidate: local features + ratio test + RANSAC epipolar geometry."""

from __future__ import annotations

import cv2
import numpy as np

from ros2_netvlad.errors import InputError

MIN_MATCHES = 8  # the fundamental matrix needs eight correspondences


class GeometricVerifier:
    def __init__(self, method: str = "orb", ratio: float = 0.8, max_features: int = 1500) -> None:
        if method == "orb":
            self._detector, norm = cv2.ORB_create(nfeatures=max_features), cv2.NORM_HAMMING
        elif method == "sift":
            self._detector, norm = cv2.SIFT_create(nfeatures=max_features), cv2.NORM_L2
        else:
            raise InputError(f"verification method must be orb or sift, got {method!r}")
        self._matcher = cv2.BFMatcher(norm)
        self.ratio = ratio

    def features(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        keypoints, descriptors = self._detector.detectAndCompute(gray, None)
        return np.float32([k.pt for k in keypoints]).reshape(-1, 2), descriptors

    def inliers(self, query_rgb: np.ndarray, map_rgb: np.ndarray) -> int:
        """Number of RANSAC inliers of the fundamental matrix between the two images."""
        points_q, desc_q = self.features(query_rgb)
        points_m, desc_m = self.features(map_rgb)
        if desc_q is None or desc_m is None or len(desc_q) < 2 or len(desc_m) < 2:
            return 0
        pairs = self._matcher.knnMatch(desc_q, desc_m, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < self.ratio * p[1].distance]
        if len(good) < MIN_MATCHES:
            return 0
        src = points_q[[m.queryIdx for m in good]]
        dst = points_m[[m.trainIdx for m in good]]
        _, mask = cv2.findFundamentalMat(src, dst, cv2.FM_RANSAC, 3.0, 0.99)
        return 0 if mask is None else int(mask.sum())
