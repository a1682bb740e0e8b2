"""Localizer: nearest map entries → re-ranked, verified loop-closure candidates → pose prior."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from ros2_netvlad.camera import Camera
from ros2_netvlad.config import KeyframeConfig, LocalizerConfig
from ros2_netvlad.geometry import Pose
from ros2_netvlad.localization.confidence import p_correct
from ros2_netvlad.localization.prior import PosePrior, pose_prior
from ros2_netvlad.localization.relative_pose import (
    RelativePose,
    verified_pair_pose,
)
from ros2_netvlad.localization.sequence import ACCEPTED_FRAME, NOT_ACCEPTED, SequenceGate
from ros2_netvlad.maps.database import Entry, MapDatabase
from ros2_netvlad.maps.storage import MapError
from ros2_netvlad.sources.keyframes import KeyframeSelector
from ros2_netvlad.verification.epipolar import NO_EVIDENCE
from ros2_netvlad.verification.features import FeatureSettings, LocalFeatures
from ros2_netvlad.verification.registry import make_verifier, verifier_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    map_id: int
    score: float  # cosine similarity of the global descriptors
    entry: Entry
    verified: bool = False  # inliers >= localizer.min_inliers
    inliers: int = 0  # epipolar inliers of the local features (0 when not checked)
    rerank_score: float = 0.0  # what the candidates are ordered by
    # verified candidates with both cameras known: the query robot in the entry's robot frame
    relative: RelativePose | None = None
    p_correct: float = 0.0  # calibrated probability of the same place (localization/confidence.py)
    acceptance: int = NOT_ACCEPTED  # what verified it: one frame, a sequence, odometry tracking

    @property
    def position(self) -> np.ndarray:
        return np.asarray(self.entry.position)


@dataclass(frozen=True)
class Result:
    candidates: list[Candidate]
    pose_prior: PosePrior | None


@dataclass(frozen=True)
class Shortlist:
    """The nearest map entries of one frame with their stored local features: taken under the map
    lock, re-ranked outside it."""

    candidates: list[Candidate]
    features: dict[int, LocalFeatures]


class Localizer:
    """Queries a map with one descriptor per frame. Not thread-safe: one worker calls it.

    A frame goes: nearest entries outside the exclusion window → min_score → spatial NMS →
    re-ranking of the top ``rerank_top_n`` by local-feature inliers (when the map stores local
    features) → top_k, each marked verified when its inliers reach ``min_inliers`` →
    consistency → pose prior (from the verified candidates when verification runs).

    ``camera`` (the query camera, from camera_info) and the map's recorded camera give each
    verified candidate a relative pose; without either, candidates carry none (geometry 0)."""

    def __init__(
        self,
        database: MapDatabase,
        config: LocalizerConfig = LocalizerConfig(),
        keyframes: KeyframeConfig = KeyframeConfig(),
    ) -> None:
        self.database, self.config = database, config
        self.features = verification_features(database, config.verification)
        # a map that stores local features needs them for every keyframe grown online, even when
        # verification is off
        extract = self.features or database.manifest.local_features
        if extract is not None and extract.method == "sift":
            extract = replace(extract, root=config.root_sift)
        self._verifier = make_verifier(extract) if extract else None
        self._recent_places: deque[np.ndarray] = deque(maxlen=config.consistency)
        self._keyframes = KeyframeSelector(keyframes)
        self._sequence = SequenceGate(*_sequence_settings(config))
        self.camera: Camera | None = None  # the query camera; set when camera_info arrives

    @property
    def verifies(self) -> bool:
        return self.features is not None

    def query(
        self,
        descriptor: np.ndarray,
        stamp_ns: int,
        image: np.ndarray | None = None,
        odometry: Pose | None = None,
    ) -> Result:
        """One frame end to end (what tools and tests call; the node splits it at the lock)."""
        shortlist = self.shortlist(descriptor, stamp_ns)
        return self.decide(shortlist, self.local_features(image), odometry)

    def local_features(self, image: np.ndarray | None) -> LocalFeatures | None:
        """The frame's local features, found once per frame: for verification, and for the map
        when it grows online (None when neither needs them)."""
        return None if image is None or self._verifier is None else self._verifier.extract(image)

    def shortlist(self, descriptor: np.ndarray, stamp_ns: int) -> Shortlist:
        candidates = self._nearest(descriptor, stamp_ns)
        candidates = [c for c in candidates if c.score >= self.config.min_score]
        candidates = self._suppress_duplicates(candidates)
        if not self.verifies:
            return Shortlist(candidates[: self.config.top_k], {})
        candidates = candidates[: max(self.config.rerank_top_n, self.config.top_k)]
        ids = [c.map_id for c in candidates[: self.config.rerank_top_n]]
        return Shortlist(candidates, self.database.local_features(ids))

    def decide(
        self, shortlist: Shortlist, features: LocalFeatures | None, odometry: Pose | None = None
    ) -> Result:
        """``odometry``: the frame's odometry pose, for acceptance over frames (sequence.py)."""
        candidates = shortlist.candidates
        if self.verifies:
            candidates = self._reranked(candidates, shortlist.features, features)
            if self._sequence.on:
                candidates = self._sequence.decide(candidates, self.weak_floor, odometry)
            trusted = [c for c in candidates if c.verified]
        else:
            candidates = [replace(c, rerank_score=c.score) for c in candidates]
            trusted = candidates
        candidates = candidates[: self.config.top_k]
        if self.config.consistency > 1 and not self._consistent(trusted):
            return Result([], None)
        return Result(candidates, pose_prior(trusted, self.config) if trusted else None)

    def add_keyframe(
        self,
        descriptor: np.ndarray,
        pose: Pose,
        stamp_ns: int,
        frame_id: str,
        features: LocalFeatures | None = None,
        depth: np.ndarray | None = None,
        source: str = "online",
    ) -> int | None:
        """Online growth: stores the frame if the keyframe rules take it; returns its map id.
        A map that stores local features gets this frame's (``features``, found for the query),
        with their depths where an aligned ``depth`` image (metres) and the camera are known."""
        if not self._keyframes.accept(pose, stamp_ns):
            return None
        entry = Entry(
            stamp_ns, frame_id, tuple(pose.position), tuple(pose.orientation), source=source
        )
        stored = None
        if self.database.manifest.local_features is not None:
            if features is None:
                raise MapError("this map stores local features: give the keyframe's")
            stored = [features]
            settings = self.database.manifest.local_features
            if depth is not None and self.camera is not None:
                stored = [features.with_depths(depth, self.camera, settings)]
        if self.database.manifest.camera is None and self.camera is not None:
            self.database.record(camera=self.camera)  # a map grown online: the node's camera
        return int(self.database.add(descriptor[None], [entry], local_features=stored)[0])

    @property
    def min_inliers(self) -> int:
        """The verification threshold, learned from the map's own look-alikes
        (maps/lookalikes.py): their quantile plus a margin, never below localizer.min_inliers;
        lookalike_default on a map that has not measured them; min_inliers with the gate off."""
        config, lookalikes = self.config, self.database.manifest.lookalikes
        if config.lookalike_quantile <= 0:
            return config.min_inliers
        if lookalikes is None:
            return max(config.min_inliers, config.lookalike_default)
        gate = lookalikes.gate(config.lookalike_quantile, config.lookalike_margin)
        return max(config.min_inliers, gate)

    @property
    def aliased(self) -> frozenset[int]:
        """Map entries that share their scene with another place (maps/lookalikes.py): however
        many inliers a frame reaches to one, the other place would give as many, so only the
        odometry (tracking, a weak sequence) can accept a closure to it."""
        lookalikes = self.database.manifest.lookalikes
        if not self.config.lookalike_aliasing or lookalikes is None:
            return frozenset()
        return lookalikes.aliased(self.config.min_inliers)

    @property
    def weak_floor(self) -> int:
        """Inliers a frame's best match needs to support a sequence: sequence_min_inliers, and
        never below what the map's look-alikes reach (their quantile, without the margin)."""
        config, lookalikes = self.config, self.database.manifest.lookalikes
        floor = config.sequence_min_inliers
        if lookalikes is not None and config.lookalike_quantile > 0:
            floor = max(floor, lookalikes.gate(config.lookalike_quantile, 0))
        return floor

    def verification_text(self) -> str:
        features, config = self.features, self.config
        if features is None:
            return "off (localizer.verification none, or the map stores no local features)"
        method = "rootsift" if features.method == "sift" and config.root_sift else features.method
        needed, why = self.min_inliers, ""
        if config.lookalike_quantile > 0 and self.database.manifest.lookalikes is not None:
            why = " (learned from the map's look-alikes)"
        elif needed != config.min_inliers:
            why = " (the map has no look-alike measurement)"
        sequence = (
            f", or {config.sequence_frames} consecutive frames at >= {self.weak_floor} agreeing "
            f"within {config.sequence_radius:g} m"
            if config.sequence_frames > 1
            else ""
        )
        if config.sequence_track_distance > 0:
            sequence += (
                f", or tracked by odometry for {config.sequence_track_distance:g} m after an "
                f"accepted closure (one of the first {config.sequence_track_rank} within "
                f"{config.sequence_radius:g} m of where it puts the robot)"
            )
        if aliased := self.aliased:
            sequence += f"; {len(aliased)} aliased entries need the odometry"
        return (
            f"{method} ({features.max_features} features), top {config.rerank_top_n} "
            f"re-ranked, verified at >= {needed} inliers{why}{sequence}"
        )

    @property
    def keyframes(self) -> KeyframeConfig:
        return self._keyframes.config

    def reconfigure(self, config: LocalizerConfig, keyframes: KeyframeConfig | None = None) -> None:
        """Applies new thresholds and keyframe rules at run time (verification method excepted)."""
        if config.consistency != self.config.consistency:
            self._recent_places = deque(self._recent_places, maxlen=config.consistency)
        self._sequence.resize(*_sequence_settings(config))
        self.config = replace(
            config, verification=self.config.verification, root_sift=self.config.root_sift
        )
        if keyframes is not None:
            self._keyframes.config = keyframes

    # --- steps ------------------------------------------------------------------------------------
    def _nearest(self, descriptor: np.ndarray, stamp_ns: int) -> list[Candidate]:
        """Enough nearest entries for NMS to thin, searched among the entries outside the
        exclusion window only (filtering afterwards could leave nothing but recent frames)."""
        excluded = self._excluded(stamp_ns)
        allowed = len(self.database) - len(excluded)
        want = max(4 * self.config.top_k, 4 * self.config.rerank_top_n, 32)
        k = min(allowed, want)
        if k <= 0:
            return []
        scores, ids = self.database.search(descriptor, k, excluded)
        keep = ids[0] >= 0
        entries = self.database.entries(ids[0][keep])
        return [
            Candidate(int(i), float(s), e)
            for i, s, e in zip(ids[0][keep], scores[0][keep], entries)
        ]

    def _excluded(self, stamp_ns: int) -> np.ndarray:
        window = int(self.config.exclusion_window * 1e9)
        if window <= 0:
            return np.zeros(0, np.int64)
        return np.flatnonzero(np.abs(self.database.stamps() - stamp_ns) < window)

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

    def _reranked(
        self,
        candidates: list[Candidate],
        stored: dict[int, LocalFeatures],
        query: LocalFeatures | None,
    ) -> list[Candidate]:
        """Verified candidates first, by inliers; the rest keep their descriptor order. Inlier
        counts below min_inliers are what random matches reach too (MAGSAC++ on unrelated real
        photos: up to ~15), so they never overrule the descriptor: re-ranking can promote a
        candidate only on evidence the decision rule itself trusts."""
        verifier, needed, aliased = self._verifier, self.min_inliers, self.aliased
        # with sequence acceptance weaker evidence counts too: count inliers down to its floor
        counted = min(needed, self.weak_floor) if self.config.sequence_frames > 1 else needed
        prepared = verifier.prepare(query) if query is not None else None
        ranked = []
        for candidate in candidates:
            found = stored.get(candidate.map_id)
            proof = (
                verifier.evidence(prepared, verifier.prepare(found), counted)
                if prepared is not None and found is not None
                else NO_EVIDENCE
            )
            verified = proof.inliers >= needed and candidate.map_id not in aliased
            ranked.append(
                replace(
                    candidate,
                    inliers=proof.inliers,
                    verified=verified,
                    # score is a cosine (<= 1) and min_inliers >= 8: verified ones sort first
                    rerank_score=candidate.score + (proof.inliers if verified else 0),
                    relative=self._relative(proof, query, found) if verified else None,
                    acceptance=ACCEPTED_FRAME if verified else NOT_ACCEPTED,
                    p_correct=p_correct(proof.inliers, candidate.score),
                )
            )
        return sorted(ranked, key=lambda c: -c.rerank_score)

    def _relative(self, proof, query: LocalFeatures, found: LocalFeatures) -> RelativePose | None:
        """The relative pose of a verified pair, when both cameras are known."""
        cameras = self.camera, self.database.manifest.camera
        if None in cameras:
            return None
        return verified_pair_pose(proof, query, found, *cameras, self.features)

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


def _sequence_settings(config: LocalizerConfig) -> tuple:
    return (
        config.sequence_frames,
        config.sequence_radius,
        config.sequence_track_distance,
        config.sequence_track_rank,
    )


def verification_features(database: MapDatabase, method: str) -> FeatureSettings | None:
    """The local features verification runs on: the map's stored ones. A map without them (built
    before they existed, or with --local-features none) runs unverified under "auto" and is
    refused when a method is asked for by name; an empty map (online mode) starts storing them."""
    choices = ("auto", "none", *verifier_names())
    if method not in choices:
        raise MapError(
            f"localizer.verification must be one of {', '.join(choices)}, got {method!r}"
        )
    if method == "none":
        return None
    stored = database.manifest.local_features
    if stored is None and len(database) == 0:
        default = FeatureSettings.method
        database.record(local_features=FeatureSettings(method if method != "auto" else default))
        stored = database.manifest.local_features  # with its codec
    if stored is None:
        message = (
            "the map stores no local features, so candidates cannot be re-ranked or verified "
            "(verified = 0, inliers = 0); rebuild it with build_map --local-features sift"
        )
        if method != "auto":
            raise MapError(f"localizer.verification {method}: {message}")
        log.warning(message)
        return None
    if method not in ("auto", stored.method):
        raise MapError(
            f"localizer.verification {method}, but the map stores {stored.method} features; "
            f"use auto or {stored.method}, or rebuild with build_map --local-features {method}"
        )
    return stored
