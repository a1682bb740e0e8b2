"""Acceptance over consecutive frames: evidence no single frame has, from time and odometry (as
ORB-SLAM's consecutive-keyframe check, RTAB-Map's hypotheses over time and SeqSLAM's sequences).

Two rules, both only on frames that no single-frame verification accepted:

- **Weak sequence** (``frames`` > 1): ``frames`` consecutive frames whose best matches reach the
  weak floor of inliers and agree accept the current one. Agree: with odometry, the match lies
  where the previous match plus the odometry between the frames puts it; without odometry (frames
  in order only), within ``radius`` of the previous match.
- **Odometry tracking** (``track_distance`` > 0, frames with odometry only): an accepted closure
  aligns the odometry with the map (the entry's pose, with the closure's relative pose when it
  has one); the alignment is confirmed when the one before it, carried by the odometry, put the
  robot where this closure does. For the next ``track_distance`` metres of odometry after a
  confirmed alignment a frame's candidate among its ``top`` best that lies where the alignment
  puts the robot is accepted, though it has too few inliers alone: the robot is driving along a
  revisit just confirmed. Tracked closures never re-align (only geometry does), so the
  hypothesis cannot drift away on its own.

Agreement allows ``radius`` plus ``DRIFT`` of the odometry driven since (heading error of the
alignment, odometry drift). How each closure was accepted is its ``acceptance``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from ros2_netvlad.geometry import Pose, rotate
from ros2_netvlad.localization.relative_pose import GEOMETRY_METRIC

# acceptance of a candidate (the loop-closure table's `acceptance` field)
NOT_ACCEPTED, ACCEPTED_FRAME, ACCEPTED_SEQUENCE, ACCEPTED_TRACKED = 0, 1, 2, 3
DRIFT = 0.1  # agreement radius grows by this fraction of the odometry driven (≈ 6° of heading)


@dataclass(frozen=True)
class _Support:
    position: np.ndarray  # the matched entry's, in the map
    heading: np.ndarray  # map_from_odom orientation implied by the match (same heading assumed)
    odometry: Pose | None


@dataclass(frozen=True)
class _Alignment:
    map_from_odom: Pose  # the odometry frame in the map, from the last closure geometry accepted
    driven: float  # metres of odometry since
    confirmed: bool  # the closure before it put the robot where this one does (through odometry)


class SequenceGate:
    def __init__(
        self, frames: int, radius: float, track_distance: float = 0.0, top: int = 5
    ) -> None:
        self._supports: deque[_Support] = deque()
        self._alignment: _Alignment | None = None
        self._last_odometry: Pose | None = None
        self.resize(frames, radius, track_distance, top)

    @property
    def on(self) -> bool:
        return self.frames > 1 or self.track_distance > 0

    def decide(self, candidates: list, floor: int, odometry: Pose | None = None) -> list:
        """``candidates`` (the localizer's, best first; verified ones have acceptance 1) and the
        frame's odometry pose; returns them with the one accepted over frames verified and
        first (unchanged when a single frame already verified, or nothing else accepts)."""
        self._drive(odometry)
        best = candidates[0] if candidates else None
        if best is not None and best.verified:
            self._align(best, odometry)
            self._support(best, floor, odometry)
            return candidates
        accepted = self._sequence(candidates, floor, odometry)
        if accepted is None:
            accepted = self._tracked(candidates, odometry)
        if accepted is None:
            return candidates
        return [accepted, *(c for c in candidates if c.map_id != accepted.map_id)]

    def resize(self, frames: int, radius: float, track_distance: float, top: int) -> None:
        self.frames, self.radius = frames, radius
        self.track_distance, self.top = track_distance, top
        self._supports = deque(self._supports, maxlen=max(frames, 1))

    # --- the two rules ----------------------------------------------------------------------------
    def _sequence(self, candidates: list, floor: int, odometry: Pose | None):
        weak = self._support(
            next((c for c in candidates if c.inliers >= floor), None), floor, odometry
        )
        if weak is None or self.frames <= 1 or len(self._supports) < self.frames:
            return None
        accepted = _accept(weak, ACCEPTED_SEQUENCE)
        self._align(accepted, odometry)
        return accepted

    def _tracked(self, candidates: list, odometry: Pose | None):
        alignment = self._alignment
        if alignment is None or odometry is None or not alignment.confirmed:
            return None
        if alignment.driven > self.track_distance:
            return None
        where = alignment.map_from_odom.compose(odometry).position
        allowed = self.radius + DRIFT * alignment.driven
        for candidate in candidates[: self.top]:
            if np.linalg.norm(candidate.position - where) <= allowed:
                return _accept(candidate, ACCEPTED_TRACKED)
        return None

    # --- state ------------------------------------------------------------------------------------
    def _drive(self, odometry: Pose | None) -> None:
        if odometry is not None and self._last_odometry is not None and self._alignment:
            step = float(np.linalg.norm(odometry.position - self._last_odometry.position))
            self._alignment = replace(self._alignment, driven=self._alignment.driven + step)
        self._last_odometry = odometry or self._last_odometry

    def _align(self, closure, odometry: Pose | None) -> None:
        """A closure accepted by geometry (or a weak sequence) places the odometry in the map.
        Tracking follows it only once confirmed: the previous alignment, carried along by the
        odometry, put the robot where this closure does. One closure alone can be off by its
        unknown baseline (a façade seen from down the street), and would carry the hypothesis
        along the wrong stretch of map."""
        if odometry is None or self.track_distance <= 0:
            return
        placed = _map_from_odom(closure, odometry)
        before = self._alignment
        confirmed = before is not None and bool(
            np.linalg.norm(
                before.map_from_odom.compose(odometry).position - placed.compose(odometry).position
            )
            <= self.radius + DRIFT * before.driven
        )
        self._alignment = _Alignment(placed, 0.0, confirmed)

    def _support(self, candidate, floor: int, odometry: Pose | None):
        """Adds a frame's weak best match to the running sequence (or starts a new one)."""
        if candidate is None or candidate.inliers < floor:
            self._supports.clear()
            return None
        heading = _map_from_odom(candidate, odometry).orientation if odometry else None
        support = _Support(candidate.position, heading, odometry)
        if self._supports and not self._agree(self._supports[-1], support):
            self._supports.clear()  # another place: a new hypothesis starts here
        self._supports.append(support)
        return candidate

    def _agree(self, previous: _Support, current: _Support) -> bool:
        if previous.odometry is None or current.odometry is None:
            return bool(np.linalg.norm(current.position - previous.position) <= self.radius)
        moved = current.odometry.position - previous.odometry.position
        # the odometry's step turned into the map, from where the previous match was
        expected = previous.position + rotate(previous.heading, moved)
        allowed = self.radius + DRIFT * float(np.linalg.norm(moved))
        return bool(np.linalg.norm(current.position - expected) <= allowed)


def _map_from_odom(closure, odometry: Pose) -> Pose:
    """The odometry frame in the map implied by a closure: the query robot is at the entry's
    pose composed with the relative pose (its rotation only when it has no scale), or at the
    entry's pose itself without one."""
    robot = Pose(closure.entry.position, closure.entry.orientation)
    relative = closure.relative
    if relative is not None:
        scaled = relative.geometry == GEOMETRY_METRIC  # a direction has no scale
        offset = relative.pose.position if scaled else np.zeros(3)
        robot = robot.compose(Pose(offset, relative.pose.orientation))
    return robot.compose(odometry.inverse())


def _accept(candidate, acceptance: int):
    return replace(
        candidate,
        verified=True,
        acceptance=acceptance,
        rerank_score=candidate.score + max(candidate.inliers, 1),
    )
