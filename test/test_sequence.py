"""Acceptance over frames: consecutive frames whose best matches are too weak alone but agree in
the map (through the odometry between them) accept a revisit; after an accepted closure the
odometry tracks the revisit; disagreeing, too few, too far or odometry-less frames do not."""

from __future__ import annotations

import numpy as np

from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.geometry import Pose, yaw_quaternion
from ros2_netvlad.localization.localizer import Candidate, Localizer
from ros2_netvlad.localization.sequence import (
    ACCEPTED_FRAME,
    ACCEPTED_SEQUENCE,
    ACCEPTED_TRACKED,
    SequenceGate,
)
from ros2_netvlad.maps.database import Entry, MapDatabase
from ros2_netvlad.verification.features import FeatureSettings


def _candidate(
    map_id: int, x: float, inliers: int, verified: bool = False, y: float = 0.0
) -> Candidate:
    entry = Entry(map_id, "map", (x, y, 0.0))  # facing +x, along the mapped route
    accepted = ACCEPTED_FRAME if verified else 0
    return Candidate(map_id, 0.5, entry, verified, inliers, 0.5, acceptance=accepted)


# the revisit's odometry: its own frame, turned 90° against the map's, starting at its origin,
# reading distances 3 % long (a drifting wheel odometry); the robot drives the map's route (+x)
ODOM_FROM_MAP = Pose(np.array([5.0, -3.0, 0.0]), yaw_quaternion(np.pi / 2))


def _odometry(x: float) -> Pose:
    return ODOM_FROM_MAP.compose(Pose(np.array([1.03 * x, 0.0, 0.0])))


def test_consecutive_agreeing_weak_matches_are_accepted():
    gate = SequenceGate(frames=3, radius=10.0)
    weak = [[_candidate(1, 0.0, 20)], [_candidate(2, 4.0, 18)], [_candidate(3, 8.0, 16)]]
    decided = [gate.decide(frame, floor=15) for frame in weak]
    assert [d[0].verified for d in decided] == [False, False, True]  # the third frame confirms
    assert decided[2][0].rerank_score > 1.0  # sorted like a verified candidate
    # a jump to another place starts a new hypothesis; a frame below the floor drops it
    assert not gate.decide([_candidate(9, 80.0, 25)], floor=15)[0].verified
    assert not gate.decide([_candidate(10, 84.0, 12)], floor=15)[0].verified
    assert not gate.decide([_candidate(11, 88.0, 25)], floor=15)[0].verified


def test_a_single_strong_frame_is_unchanged_and_the_gate_off_changes_nothing():
    gate = SequenceGate(frames=0, radius=10.0)
    assert not gate.on
    strong = [_candidate(1, 0.0, 60, verified=True), _candidate(2, 50.0, 3)]
    assert SequenceGate(3, 10.0).decide(strong, floor=15) == strong


def test_the_localizer_counts_weak_inliers_and_says_so():
    database = MapDatabase.create(4)
    database.record(local_features=FeatureSettings())
    config = LocalizerConfig(sequence_frames=3, sequence_min_inliers=12)
    localizer = Localizer(database, config)
    assert localizer.weak_floor == 12
    assert "3 consecutive frames at >= 12" in localizer.verification_text()
    assert "consecutive" not in Localizer(database).verification_text()  # off by default


def test_odometry_tracks_a_revisit_after_a_closure_and_only_where_it_puts_the_robot():
    gate = SequenceGate(frames=0, radius=5.0, track_distance=40.0, top=3)
    assert gate.on
    # frame at x = -2 verified against the entry at x = -2: the odometry is placed in the map, but
    # one closure alone does not start tracking (its baseline may be unknown)
    gate.decide([_candidate(90, -2.0, 80, verified=True)], floor=15, odometry=_odometry(-2.0))
    assert not gate.decide([_candidate(91, -1.0, 0)], floor=15, odometry=_odometry(-1.0))[
        0
    ].verified
    # the next closure lies where the first, carried by the odometry, puts the robot: confirmed
    gate.decide([_candidate(0, 0.0, 80, verified=True)], floor=15, odometry=_odometry(0.0))
    # 8 m on: no inliers at all, but the entry at 8 m is among the top 3 → tracked
    frame = [_candidate(40, 200.0, 0), _candidate(8, 8.0, 0), _candidate(9, 9.5, 0)]
    tracked = gate.decide(frame, floor=15, odometry=_odometry(8.0))[0]
    assert tracked.map_id == 8 and tracked.verified and tracked.acceptance == ACCEPTED_TRACKED
    # 16 m on, the only nearby entry is 4th (outside the top 3), or nothing is near: not accepted
    frame = [_candidate(40, 200.0, 0), _candidate(41, 60.0, 0), _candidate(42, 90.0, 0)]
    assert not any(
        c.verified for c in gate.decide([*frame, _candidate(16, 16.0, 0)], 15, _odometry(16.0))
    )
    # an entry on a parallel street 12 m to the side is not where the odometry puts the robot
    side = gate.decide([_candidate(20, 20.0, 0, y=12.0)], floor=15, odometry=_odometry(20.0))
    assert not side[0].verified
    # a frame without odometry is never tracked; beyond track_distance nothing is
    assert not gate.decide([_candidate(24, 24.0, 0)], floor=15, odometry=None)[0].verified
    assert gate.decide([_candidate(32, 32.0, 0)], 15, _odometry(32.0))[0].verified
    assert not gate.decide([_candidate(48, 48.0, 0)], floor=15, odometry=_odometry(48.0))[
        0
    ].verified


def test_a_closure_the_last_one_does_not_confirm_stops_tracking_until_another_does():
    gate = SequenceGate(frames=0, radius=5.0, track_distance=100.0, top=5)
    for x in (0.0, 2.0):  # two agreeing closures: tracking on
        gate.decide([_candidate(int(x), x, 80, verified=True)], floor=15, odometry=_odometry(x))
    # a closure 15 m further than the odometry says (the same façade seen from down the street,
    # or the map's other copy of the route): the alignment moves there, unconfirmed
    gate.decide([_candidate(1, 19.0, 30, verified=True)], floor=15, odometry=_odometry(4.0))
    # the next frame's best candidates near where that closure would put it are not tracked
    after = gate.decide([_candidate(2, 20.5, 0), _candidate(3, 5.5, 0)], 15, _odometry(5.5))
    assert not any(c.verified for c in after)
    # a second closure there agrees with it: tracked from then on, relative to the new alignment
    gate.decide([_candidate(4, 22.0, 60, verified=True)], floor=15, odometry=_odometry(7.0))
    tracked = gate.decide([_candidate(5, 26.0, 0), _candidate(6, 11.0, 0)], 15, _odometry(11.0))
    assert tracked[0].map_id == 5 and tracked[0].acceptance == ACCEPTED_TRACKED


def test_weak_frames_agree_through_the_odometry_between_them():
    gate = SequenceGate(frames=2, radius=3.0)
    gate.decide([_candidate(1, 0.0, 20)], floor=15, odometry=_odometry(0.0))
    # 10 m of odometry later the match lies 10 m on: it agrees (though > radius from the last)
    second = gate.decide([_candidate(2, 10.0, 18)], floor=15, odometry=_odometry(10.0))[0]
    assert second.verified and second.acceptance == ACCEPTED_SEQUENCE
    # a match standing still while the odometry moved 10 m does not agree
    gate = SequenceGate(frames=2, radius=3.0)
    gate.decide([_candidate(1, 0.0, 20)], floor=15, odometry=_odometry(0.0))
    assert not gate.decide([_candidate(2, 0.5, 18)], floor=15, odometry=_odometry(10.0))[0].verified
