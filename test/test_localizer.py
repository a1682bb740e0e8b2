"""Localizer on seeded synthetic maps: filters, consistency, pose prior, online growth,
verification."""

import dataclasses

import numpy as np
import pytest

from ros2_netvlad.config import KeyframeConfig, LocalizerConfig
from ros2_netvlad.geometry import Pose, angle_between, yaw_quaternion
from ros2_netvlad.localization.localizer import Localizer
from ros2_netvlad.maps.database import Entry, MapDatabase

DIM = 16


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def world():
    """20 places 50 m apart, three entries per place (1 m apart, stamps 10 s apart per place)."""
    rng = np.random.default_rng(0)
    places = unit(rng.normal(size=(20, DIM)))
    descriptors, entries = [], []
    for p, centre in enumerate(places):
        for j in range(3):
            descriptors.append(unit(centre + 0.05 * rng.normal(size=DIM)))
            entries.append(
                Entry(
                    (p * 10 + j) * 1_000_000_000,
                    "map",
                    (50.0 * p + j, 0.0, 0.0),
                    tuple(yaw_quaternion(0.1 * j)),
                )
            )
    db = MapDatabase.create(DIM)
    db.add(np.array(descriptors, np.float32), entries)
    return db, places


def test_best_candidate_is_the_right_place_and_duplicates_are_suppressed(world):
    db, places = world
    localizer = Localizer(db, LocalizerConfig(top_k=5, nms_radius=5.0))
    result = localizer.query(places[7], stamp_ns=0)
    assert result.candidates[0].entry.position[0] in (350, 351, 352)
    xs = [c.entry.position[0] for c in result.candidates]
    assert all(abs(a - b) >= 5 for i, a in enumerate(xs) for b in xs[:i]), (
        "NMS left near-duplicates"
    )
    assert [c.score for c in result.candidates] == sorted(
        (c.score for c in result.candidates), reverse=True
    )
    no_nms = Localizer(db, LocalizerConfig(top_k=3, nms_radius=0)).query(places[7], 0)
    assert sorted(c.entry.position[0] for c in no_nms.candidates) == [350, 351, 352]


def test_min_score_and_exclusion_window(world):
    db, places = world
    assert Localizer(db, LocalizerConfig(min_score=0.999)).query(places[3], 0).candidates == []
    stamp = 70 * 1_000_000_000  # place 7's entries are 70..72 s
    result = Localizer(db, LocalizerConfig(exclusion_window=30.0)).query(places[7], stamp)
    assert all(abs(c.entry.stamp_ns - stamp) >= 30e9 for c in result.candidates)
    assert result.candidates and result.candidates[0].entry.position[0] not in (350, 351, 352)


def test_temporal_consistency_needs_agreeing_frames(world):
    db, places = world
    localizer = Localizer(db, LocalizerConfig(consistency=3, consistency_radius=10.0))
    assert localizer.query(places[4], 0).candidates == []
    assert localizer.query(places[4], 1).candidates == []
    assert localizer.query(places[4], 2).candidates  # third agreeing frame confirms
    assert localizer.query(places[9], 3).candidates == []  # a jump resets the agreement
    localizer.reconfigure(dataclasses.replace(localizer.config, consistency=1))
    assert localizer.query(places[9], 4).candidates  # runtime change applies at once


def test_pose_prior_is_score_weighted_with_a_floor(world):
    db, places = world
    config = LocalizerConfig(top_k=3, nms_radius=0, prior_radius=5.0, position_variance_floor=0.25)
    prior = Localizer(db, config).query(places[2], 0).pose_prior
    assert prior.support == 3
    assert 100.0 <= prior.pose.position[0] <= 102.0
    assert angle_between(prior.pose.orientation, yaw_quaternion(0.1)) < 0.1
    cov = prior.covariance
    assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)
    assert cov[0, 0] > cov[1, 1] >= 0.25  # spread along x on top of the floor
    single = Localizer(db, dataclasses.replace(config, top_k=1)).query(places[2], 0).pose_prior
    assert single.support == 1 and single.covariance[1, 1] >= 0.25


def test_no_prior_without_candidates(world):
    db, places = world
    assert Localizer(db, LocalizerConfig(min_score=1.0)).query(places[0], 0).pose_prior is None
    assert Localizer(MapDatabase.create(DIM)).query(places[0], 0).candidates == []


def test_online_keyframes_and_loop_closure(world):
    _, places = world
    db = MapDatabase.create(DIM)
    localizer = Localizer(
        db,
        LocalizerConfig(exclusion_window=20.0, verification="none"),
        KeyframeConfig(min_distance=2.0, min_angle=90),
    )
    added = [
        localizer.add_keyframe(places[i % 5], Pose((float(i), 0, 0)), i * 1_000_000_000, "odom")
        for i in range(10)
    ]
    assert [a is not None for a in added] == [
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    # revisiting place 0 at t = 100 s: the old keyframe is outside the exclusion window → loop
    # closure
    result = localizer.query(places[0], 100 * 1_000_000_000)
    assert result.candidates and result.candidates[0].map_id == 0
    # at t = 12 s the same keyframe is too recent
    assert all(c.map_id != 0 for c in localizer.query(places[0], 12 * 1_000_000_000).candidates)


def test_a_long_exclusion_window_still_finds_the_older_true_match():
    """Online mode: 300 recent keyframes of the place the robot is at (all nearer in descriptor
    space than the old visit) lie inside the window; the search must skip them, not take the
    nearest few and filter them all away."""
    rng = np.random.default_rng(3)
    here = unit(rng.normal(size=DIM))
    old = unit(here + 0.3 * rng.normal(size=DIM))
    others = unit(rng.normal(size=(50, DIM)))
    recent = unit(here + 0.05 * rng.normal(size=(300, DIM)))
    db = MapDatabase.create(DIM)
    second = 1_000_000_000
    db.add(old[None].astype(np.float32), [Entry(0, "map", (0.0, 0.0, 0.0))])
    db.add(
        others.astype(np.float32),
        [Entry(s * second, "map", (100.0 + 50 * s, 0, 0)) for s in range(1, 51)],
    )
    db.add(
        recent.astype(np.float32),
        [Entry((1000 + s) * second, "map", (0.0, 50.0, 0)) for s in range(300)],
    )
    config = LocalizerConfig(top_k=3, exclusion_window=600.0, nms_radius=0, verification="none")
    result = Localizer(db, config).query(here, 1300 * second)
    assert result.candidates[0].map_id == 0  # the old visit, outranking the unrelated places
    assert len(result.candidates) == 3
    assert all(c.entry.stamp_ns < 700 * second for c in result.candidates)


def _features_map(photos, shots, positions):
    from ros2_netvlad.verification.features import FeatureSettings
    from ros2_netvlad.verification.registry import make_verifier

    settings = FeatureSettings("sift")
    extract = make_verifier(settings).extract
    db = MapDatabase.create(DIM)
    db.record(local_features=settings)
    descriptors = unit(np.random.default_rng(1).normal(size=(len(shots), DIM))).astype(np.float32)
    entries = [Entry(0, "map", p) for p in positions]
    db.add(descriptors, entries, local_features=[extract(photos[s]) for s in shots])
    return db, descriptors


def test_reranking_puts_the_geometrically_consistent_photo_first(photos):
    import cv2

    db, descriptors = _features_map(photos, ["coffee", "astronaut"], [(100, 0, 0), (0, 0, 0)])
    localizer = Localizer(db, LocalizerConfig(nms_radius=0, top_k=2))
    assert localizer.verifies and localizer.features.method == "sift"
    query = cv2.warpAffine(
        photos["astronaut"], cv2.getRotationMatrix2D((256, 256), 8, 0.9), (512, 512)
    )
    # the descriptor prefers the coffee entry; the stored astronaut features must win
    result = localizer.query(unit(descriptors[0] + 0.8 * descriptors[1]), 0, image=query)
    best, other = result.candidates
    assert best.map_id == 1 and best.verified and best.inliers >= 30
    assert other.map_id == 0 and not other.verified and other.inliers < 30
    assert best.score < other.score and best.rerank_score > other.rerank_score
    assert result.pose_prior is not None and result.pose_prior.pose.position[0] == 0.0
    # nothing verified → candidates still reported (flag 0), but no pose prior
    unrelated = localizer.query(descriptors[0], 0, image=photos["rocket"])
    assert unrelated.candidates and not any(c.verified for c in unrelated.candidates)
    assert unrelated.pose_prior is None


def test_a_map_without_local_features_loads_and_says_what_is_missing(world, tmp_path, caplog):
    from ros2_netvlad.maps.storage import MapError

    db, places = world
    db.save(tmp_path / "old")
    old = MapDatabase.load(tmp_path / "old")
    with caplog.at_level("WARNING"):
        localizer = Localizer(old)  # verification auto
    assert not localizer.verifies
    assert "no local features" in caplog.text and "build_map --local-features sift" in caplog.text
    result = localizer.query(places[3], 0, image=np.zeros((48, 64, 3), np.uint8))
    assert result.candidates and not any(c.verified or c.inliers for c in result.candidates)
    with pytest.raises(MapError, match="rebuild it with build_map --local-features sift"):
        Localizer(old, LocalizerConfig(verification="sift"))


def test_a_map_with_local_features_keeps_them_when_grown_unverified(photos):
    db, descriptors = _features_map(photos, ["coffee"], [(100, 0, 0)])
    localizer = Localizer(db, LocalizerConfig(verification="none"), KeyframeConfig(min_distance=0))
    assert not localizer.verifies
    features = localizer.local_features(photos["astronaut"])
    assert features is not None and len(features) > 100
    added = localizer.add_keyframe(descriptors[0], Pose((0.0, 0, 0)), 5, "odom", features)
    assert len(db.local_features([added])[added]) == len(features)
