"""Sequence-consistent acceptance: consecutive frames whose best matches are too weak alone
but agree in the map accept a revisit; disagreeing or too few frames do not."""

from __future__ import annotations

from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.localization.localizer import Candidate, Localizer
from ros2_netvlad.localization.sequence import SequenceGate
from ros2_netvlad.maps.database import Entry, MapDatabase
from ros2_netvlad.verification.features import FeatureSettings


def _candidate(map_id: int, x: float, inliers: int, verified: bool = False) -> Candidate:
    return Candidate(map_id, 0.5, Entry(map_id, "map", (x, 0.0, 0.0)), verified, inliers, 0.5)


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
