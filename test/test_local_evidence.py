"""Local evidence: SIFT matched as RootSIFT (localizer.root_sift; the stored features are the
same), checked against its definition and on real photographs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.localization.localizer import Localizer
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.verification.epipolar import root_sift
from ros2_netvlad.verification.features import FeatureSettings
from ros2_netvlad.verification.registry import make_verifier


def test_root_sift_is_the_square_root_of_the_l1_normalised_descriptor():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (20, 128)).astype(np.uint8)
    roots = root_sift(rows)
    assert np.allclose(np.linalg.norm(roots, axis=1), 1.0, atol=1e-6)
    p, q = rows[0] / rows[0].sum(), rows[1] / rows[1].sum()
    hellinger = 2.0 - 2.0 * np.sum(np.sqrt(p * q))  # squared L2 of the roots
    assert np.sum((roots[0] - roots[1]) ** 2) == pytest.approx(hellinger, rel=1e-5)
    assert np.all(np.isfinite(root_sift(np.zeros((2, 128), np.uint8))))  # empty descriptors


def test_root_sift_verifies_real_revisits_and_refuses_other_places(photos):
    verifier = make_verifier(FeatureSettings(root=True))
    moved = np.roll(photos["astronaut"], (12, -20), axis=(0, 1))
    same = verifier.evidence(
        verifier.prepare(verifier.extract(moved)),
        verifier.prepare(verifier.extract(photos["astronaut"])),
        30,
    )
    other = verifier.evidence(
        verifier.prepare(verifier.extract(photos["coffee"])),
        verifier.prepare(verifier.extract(photos["astronaut"])),
        8,
    )
    assert same.inliers >= 100 and other.inliers < 15


def test_the_localizer_matches_sift_maps_as_root_sift_unless_told_not_to(tmp_path):
    database = MapDatabase.create(4)
    database.record(local_features=FeatureSettings())
    root = Localizer(database)  # the default since issue 20
    assert root.verification_text().startswith("rootsift") and root._verifier.settings.root
    plain = Localizer(database, LocalizerConfig(root_sift=False))
    assert plain.verification_text().startswith("sift") and not plain._verifier.settings.root


def test_small_frames_can_be_enlarged_before_finding_features(photos):
    """min_side: a 320x240 frame is enlarged to a 480 px short side; keypoints map back onto the
    camera's pixels, and the map records it as version 2 (older packages refuse such maps)."""
    from ros2_netvlad.camera import Camera, image_scale, keypoints_to_pixels
    from ros2_netvlad.errors import InputError

    small = cv2.resize(photos["astronaut"], (320, 240))
    assert image_scale(320, 240, 480, 480) == 2.0 and image_scale(1280, 960, 480) == 0.375
    plain = make_verifier(FeatureSettings()).extract(small)
    settings = FeatureSettings(min_side=480)
    enlarged = make_verifier(settings).extract(small)
    assert enlarged.keypoints[:, 1].max() > 240  # found in the 640x480 image
    camera = Camera(320, 240, (300, 0, 160, 0, 300, 120, 0, 0, 1))
    pixels = keypoints_to_pixels(enlarged.keypoints, camera, settings.max_side, settings.min_side)
    assert pixels.min() > -1 and pixels[:, 0].max() < 320 and pixels[:, 1].max() < 240
    assert len(plain) and len(enlarged)
    recorded = settings.manifest()
    assert recorded["version"] == 2 and FeatureSettings.from_manifest(recorded).min_side == 480
    assert FeatureSettings().manifest()["version"] == 1  # unchanged for maps without it
    with pytest.raises(InputError, match="version 3"):
        FeatureSettings.from_manifest({**recorded, "version": 3})
