"""The map's own look-alikes raise the verification gate: a map whose different places share a
texture (a self-similar corridor) verifies nothing below what its wrong pairs reach, while a map
of distinct places keeps the configured floor."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.geometry import Pose
from ros2_netvlad.localization.localizer import Localizer
from ros2_netvlad.localization.sequence import ACCEPTED_FRAME, ACCEPTED_TRACKED
from ros2_netvlad.maps.database import Entry, MapDatabase
from ros2_netvlad.maps.lookalikes import measure_lookalikes
from ros2_netvlad.maps.manifest import Lookalikes, MapError
from ros2_netvlad.verification.features import FeatureSettings
from ros2_netvlad.verification.registry import make_verifier


def _map(images: list[np.ndarray], positions: list[float], descriptors: np.ndarray) -> MapDatabase:
    database = MapDatabase.create(descriptors.shape[1])
    database.record(local_features=FeatureSettings())
    verifier = make_verifier(FeatureSettings())
    entries = [Entry(i, "map", (x, 0.0, 0.0)) for i, x in enumerate(positions)]
    features = [verifier.extract(image) for image in images]
    database.add(descriptors, entries, None, features)
    return database


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_distinct_places_keep_the_floor_and_look_alikes_raise_it(photos, tmp_path):
    names = ["astronaut", "coffee", "chelsea", "rocket"]
    rng = np.random.default_rng(0)
    distinct = _map([photos[n] for n in names], [0, 100, 200, 300], _unit(rng.normal(size=(4, 8))))
    lookalikes = measure_lookalikes(distinct)
    assert len(lookalikes.inliers) == 4 and max(lookalikes.inliers) < 20
    distinct.record(lookalikes=lookalikes)
    # the floor, or the look-alikes' quantile + margin where that is higher
    assert Localizer(distinct).min_inliers == max(20, lookalikes.gate(0.99, 6))
    # a map without a measurement (built before it) keeps the old fixed threshold
    unmeasured = _map(
        [photos[n] for n in names], [0, 100, 200, 300], _unit(rng.normal(size=(4, 8)))
    )
    assert Localizer(unmeasured).min_inliers == LocalizerConfig().lookalike_default == 30
    assert "no look-alike measurement" in Localizer(unmeasured).verification_text()
    # the same façade at two places 100 m apart (nearest to each other by descriptor)
    twin = np.roll(photos["astronaut"], (10, -15), axis=(0, 1))
    descriptors = _unit(np.r_[np.ones((2, 8)), rng.normal(size=(2, 8))])
    corridor = _map([photos["astronaut"], twin, photos["coffee"], photos["rocket"]],
                    [0, 100, 200, 300], descriptors)  # fmt: skip
    corridor.record(lookalikes=measure_lookalikes(corridor))
    localizer = Localizer(corridor)
    assert localizer.min_inliers > 100  # what the twins reach, plus the margin
    assert "look-alikes" in localizer.verification_text()
    # the same façade a third time, at a place the map does not have (the robot explores a new
    # stretch of the corridor): at the floor it would be a false closure, above the gate it is not
    elsewhere = cv2.resize(photos["astronaut"], None, fx=0.8, fy=0.8)
    floor = Localizer(corridor, LocalizerConfig(lookalike_quantile=0.0, lookalike_aliasing=False))
    assert floor.min_inliers == LocalizerConfig().min_inliers == 20
    wrong = floor.query(descriptors[0], 10**12, elsewhere).candidates
    assert any(c.verified for c in wrong)  # what the gate is for
    assert max(c.inliers for c in wrong) < localizer.min_inliers
    result = localizer.query(descriptors[0], 10**12, elsewhere)
    assert result.candidates and not any(c.verified for c in result.candidates)
    # recorded in the manifest, so a saved map carries its gate
    loaded = MapDatabase.load(corridor.save(tmp_path / "corridor"))
    assert loaded.manifest.lookalikes == corridor.manifest.lookalikes


def test_the_same_scene_at_two_places_needs_the_odometry(photos):
    """The twins are aliased: a frame of one reaches as many inliers to the other, so even a true
    revisit is not accepted on its own inliers; odometry tracking, after a confirmed closure
    elsewhere, accepts the twin where the robot is and never the one 100 m away."""
    rng = np.random.default_rng(1)
    twin = np.roll(photos["astronaut"], (10, -15), axis=(0, 1))
    descriptors = _unit(np.r_[np.ones((2, 8)), rng.normal(size=(2, 8))])
    images = [photos["astronaut"], twin, photos["coffee"], photos["rocket"]]
    street = _map(images, [0, 100, 40, 50], descriptors)
    lookalikes = measure_lookalikes(street)
    street.record(lookalikes=lookalikes)
    assert lookalikes.entries and len(lookalikes.entries) == len(lookalikes.inliers)
    # at the floor, so the gate's own height (the twins' inliers + margin) is not what refuses
    config = LocalizerConfig(lookalike_quantile=0.0)
    localizer = Localizer(street, config)
    assert localizer.aliased == {0, 1} == lookalikes.aliased(config.min_inliers)
    assert "2 aliased entries need the odometry" in localizer.verification_text()
    revisit = cv2.resize(photos["astronaut"], None, fx=0.8, fy=0.8)  # at place 0
    alone = localizer.query(descriptors[0], 10**12, revisit).candidates
    assert max(c.inliers for c in alone) >= 2 * config.min_inliers  # plenty, and to both twins
    assert not any(c.verified for c in alone)
    unaware = Localizer(street, replace(config, lookalike_aliasing=False))
    assert unaware.query(descriptors[0], 10**12, revisit).candidates[0].verified
    # driving back towards place 0: closures at 50 m and 40 m (distinct places) confirm the
    # odometry's alignment, then the twin at the robot's place is tracked, the far one is not
    for entry, x in ((3, 50.0), (2, 40.0)):
        view = cv2.resize(images[entry], None, fx=0.8, fy=0.8)
        best = localizer.query(descriptors[entry], 10**12, view, Pose(np.array([x, 0, 0])))
        assert best.candidates[0].map_id == entry
        assert best.candidates[0].acceptance == ACCEPTED_FRAME
    tracked = localizer.query(descriptors[0], 10**12, revisit, Pose(np.zeros(3))).candidates
    assert tracked[0].verified and tracked[0].acceptance == ACCEPTED_TRACKED
    assert tracked[0].map_id == 0 and not any(c.verified for c in tracked[1:])


def test_the_gate_is_a_quantile_plus_a_margin():
    lookalikes = Lookalikes(tuple(range(100)), entries=tuple((i, i + 1) for i in range(100)))
    assert lookalikes.gate(0.99, 6) == 99 + 6 and lookalikes.gate(0.5, 0) == 50
    assert Lookalikes(()).gate(0.99, 6) == 0
    assert Lookalikes.from_json(lookalikes.to_json()) == lookalikes
    assert lookalikes.aliased(98) == {98, 99, 100}
    # a manifest measured before the pairs were recorded: the gate, and no entry aliased
    old = {"inliers": [3, 40], "radius": 25.0, "pairs": 2}
    assert Lookalikes.from_json(old).gate(0.99, 0) == 40 and not Lookalikes.from_json(old).aliased(
        20
    )
    with pytest.raises(MapError, match="2 inlier counts"):
        Lookalikes.from_json({**old, "entries": [[0, 1]]})
