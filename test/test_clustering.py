"""k-means centroid initialization and the assignment sharpness α."""

import numpy as np
import pytest
import torch

from ros2_netvlad.config import ArchConfig, DescriberConfig
from ros2_netvlad.model.clustering import (
    ASSIGNMENT_RATIO,
    assignment_alpha,
    initialize_netvlad,
    kmeans_centroids,
    sample_local_features,
)
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.netvlad import build_model


def test_alpha_matches_brute_force():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 6)).astype(np.float32)
    centroids = rng.normal(size=(5, 6)).astype(np.float32)
    d2 = np.sort(((features[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    want = np.log(ASSIGNMENT_RATIO) / np.mean(d2[:, 1] - d2[:, 0])
    assert assignment_alpha(features, centroids) == pytest.approx(want, rel=1e-4)


def test_kmeans_needs_enough_features():
    with pytest.raises(ValueError, match="at least 8 local features"):
        kmeans_centroids(np.zeros((5, 4), np.float32), 8)


def test_initialization_on_real_photos(photos):
    model = build_model(ArchConfig("efficientnet_lite0", num_clusters=8), pretrained=True)
    describer = Describer(model, DescriberConfig(device="cpu", max_side=160))
    images = list(photos.values())
    alpha = initialize_netvlad(describer, images, per_image=200)
    features = sample_local_features(describer, images, per_image=200)
    # The assignment conv now scores each feature so that, on average, its nearest centroid beats
    # the second nearest by ASSIGNMENT_RATIO : 1.
    with torch.no_grad():
        logits = model.pool.conv(torch.from_numpy(features)[:, :, None, None])[:, :, 0, 0]
    top2 = logits.topk(2, dim=1).values
    assert float((top2[:, 0] - top2[:, 1]).mean()) == pytest.approx(
        np.log(ASSIGNMENT_RATIO), rel=1e-3
    )
    assert alpha > 0
    descriptors = describer(images)
    similarity = descriptors @ descriptors.T
    assert np.all(similarity[~np.eye(len(images), dtype=bool)] < 0.95), (
        "distinct photos must differ"
    )
