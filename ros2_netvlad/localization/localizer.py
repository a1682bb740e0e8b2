"""Localizer: nearest map entries → filtered loop-closure candidates → pose prior."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ros2_netvlad.config import KeyframeConfig, LocalizerConfig
from ros2_netvlad.geometry import Pose, angle_between, average_quaternions
from ros2_netvlad.imaging import compressed_to_rgb, rgb_to_jpeg
from ros2_netvlad.localization.verification import GeometricVerifier
from ros2_netvlad.maps.database import Entry, MapDatabase
from ros2_netvlad.sources.keyframes import KeyframeSelector


@dataclass(frozen=True)
class Candidate:
    map_id: int
    score: float
    entry: Entry
    verified: bool = False

    @property
    def position(self) -> np.ndarray:
        return np.asarray(self.entry.position)


@dataclass(frozen=True)
class PosePrior:
    pose: Pose
    covariance: np.ndarray  # 6×6, (x, y, z, rot x, rot y, rot z)
    support: int  # candidates that agreed


@dataclass(frozen=True)
class Result:
    candidates: list[Candidate]
    pose_prior: PosePrior | None


class Localizer:
    """Queries a map with one descriptor per frame. Not thread-safe: one worker calls it."""

    def __init__(
        self,
        database: MapDatabase,
        config: LocalizerConfig = LocalizerConfig(),
        keyframes: KeyframeConfig = KeyframeConfig(),
    ) -> None:
        self.database, self.config = database, config
        self._verifier = (
            None if config.verification == "none" else GeometricVerifier(config.verification)
        )
        self._recent_places: deque[np.ndarray] = deque(maxlen=config.consistency)
        self._keyframes = KeyframeSelector(keyframes)

    def query(
        self, descriptor: np.ndarray, stamp_ns: int, image: np.ndarray | None = None
    ) -> Result:
        candidates = self._nearest(descriptor)
        candidates = self._outside_exclusion_window(candidates, stamp_ns)
        candidates = [c for c in candidates if c.score >= self.config.min_score]
        candidates = self._suppress_duplicates(candidates)
        candidates = self._verified(candidates, image)[: self.config.top_k]
        if not self._consistent(candidates):
            return Result([], None)
        return Result(candidates, self._pose_prior(candidates))

    def add_keyframe(
        self,
        descriptor: np.ndarray,
        pose: Pose,
        stamp_ns: int,
        frame_id: str,
        image: np.ndarray | None = None,
        source: str = "online",
    ) -> int | None:
        """Online growth: stores the frame if the keyframe rules take it; returns its map id."""
        if not self._keyframes.accept(pose, stamp_ns):
            return None
        entry = Entry(
            stamp_ns, frame_id, tuple(pose.position), tuple(pose.orientation), source=source
        )
        jpeg = [rgb_to_jpeg(image)] if image is not None and self._verifier is not None else None
        return int(self.database.add(descriptor[None], [entry], jpeg)[0])

    @property
    def keyframes(self) -> KeyframeConfig:
        return self._keyframes.config

    def reconfigure(self, config: LocalizerConfig, keyframes: KeyframeConfig | None = None) -> None:
        """Applies new thresholds and keyframe rules at run time (verification method excepted)."""
        if config.consistency != self.config.consistency:
            self._recent_places = deque(self._recent_places, maxlen=config.consistency)
        self.config = config
        if keyframes is not None:
            self._keyframes.config = keyframes

    # --- steps ------------------------------------------------------------------------------------
    def _nearest(self, descriptor: np.ndarray) -> list[Candidate]:
        k = min(len(self.database), max(4 * self.config.top_k, 32))
        if k == 0:
            return []
        scores, ids = self.database.search(descriptor, k)
        keep = ids[0] >= 0
        entries = self.database.entries(ids[0][keep])
        return [
            Candidate(int(i), float(s), e)
            for i, s, e in zip(ids[0][keep], scores[0][keep], entries)
        ]

    def _outside_exclusion_window(
        self, candidates: list[Candidate], stamp_ns: int
    ) -> list[Candidate]:
        window = self.config.exclusion_window * 1e9
        if window <= 0:
            return candidates
        return [c for c in candidates if abs(c.entry.stamp_ns - stamp_ns) >= window]

    def _suppress_duplicates(self, candidates: list[Candidate]) -> list[Candidate]:
        """Spatial non-maximum suppression: keep a candidate only if no better one is within
        nms_radius."""
        radius = self.config.nms_radius
        kept: list[Candidate] = []
        for candidate in candidates:  # best first
            if radius <= 0 or all(
                np.linalg.norm(candidate.position - k.position) >= radius for k in kept
            ):
                kept.append(candidate)
        return kept

    def _verified(self, candidates: list[Candidate], image: np.ndarray | None) -> list[Candidate]:
        if self._verifier is None or image is None:
            return candidates
        verified = []
        for candidate in candidates[: self.config.top_k * 2]:
            jpeg = self.database.image(candidate.map_id)
            if jpeg is None:
                continue
            if (
                self._verifier.inliers(image, compressed_to_rgb(jpeg, "jpeg"))
                >= self.config.min_inliers
            ):
                verified.append(Candidate(candidate.map_id, candidate.score, candidate.entry, True))
        return verified

    def _consistent(self, candidates: list[Candidate]) -> bool:
        """True when the last ``consistency`` frames all had a best match at the same place."""
        if not candidates:
            self._recent_places.clear()
            return False
        self._recent_places.append(candidates[0].position)
        if len(self._recent_places) < self.config.consistency:
            return False
        places = np.array(self._recent_places)
        spread = np.linalg.norm(places[:, None] - places[None], axis=-1).max()
        return bool(spread <= self.config.consistency_radius)

    def _pose_prior(self, candidates: list[Candidate]) -> PosePrior:
        best = candidates[0].position
        support = [
            c for c in candidates if np.linalg.norm(c.position - best) <= self.config.prior_radius
        ]
        weights = np.array([max(c.score, 1e-6) for c in support])
        weights = weights / weights.sum()
        positions = np.array([c.position for c in support])
        orientations = np.array([c.entry.orientation for c in support])
        mean_position = weights @ positions
        mean_orientation = average_quaternions(orientations, weights)
        # Spread of the agreeing candidates, inflated when their scores are low, never below the
        # floor.
        confidence = max(float(np.mean([c.score for c in support])), 0.05)
        offsets = positions - mean_position
        covariance = np.zeros((6, 6))
        covariance[:3, :3] = (offsets * weights[:, None]).T @ offsets
        covariance[:3, :3] += np.eye(3) * self.config.position_variance_floor / confidence
        angles = np.array([angle_between(q, mean_orientation) for q in orientations])
        rotation_variance = (
            float(weights @ angles**2) + self.config.orientation_variance_floor / confidence
        )
        covariance[3:, 3:] = np.eye(3) * rotation_variance
        return PosePrior(Pose(mean_position, mean_orientation), covariance, len(support))
