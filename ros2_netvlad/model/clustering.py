"""NetVLAD centroid initialization: k-means (faiss) on local features sampled from images."""

from __future__ import annotations

import logging
from typing import Iterable

import faiss
import numpy as np
from tqdm import tqdm

from ros2_netvlad.errors import InputError
from ros2_netvlad.model.describer import Describer

log = logging.getLogger(__name__)

# The soft assignment of a feature to its nearest centroid should beat the second nearest by this
# ratio on average; the MATLAB reference uses 100:1.
ASSIGNMENT_RATIO = 100.0


def sample_local_features(
    describer: Describer,
    images: Iterable[np.ndarray],
    per_image: int = 100,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """L2-normalized local features, up to ``per_image`` drawn at random from each image."""
    rng = np.random.default_rng(seed)
    samples = []
    for image in tqdm(images, desc="sampling local features", unit="img", disable=not progress):
        features = describer.dense_features(image)
        keep = rng.choice(len(features), size=min(per_image, len(features)), replace=False)
        samples.append(features[keep])
    if not samples:
        raise InputError("no images given to sample local features from")
    features = np.concatenate(samples).astype(np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def kmeans_centroids(
    features: np.ndarray, num_clusters: int, seed: int = 0, niter: int = 50
) -> np.ndarray:
    if len(features) < num_clusters:
        raise InputError(
            f"k-means needs at least {num_clusters} local features (one per cluster), "
            f"got {len(features)}; give more images or sample more per image"
        )
    kmeans = faiss.Kmeans(
        features.shape[1],
        num_clusters,
        niter=niter,
        seed=seed,
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=max(256, len(features) // num_clusters + 1),
    )
    kmeans.train(np.ascontiguousarray(features, dtype=np.float32))
    return kmeans.centroids.copy()


def assignment_alpha(features: np.ndarray, centroids: np.ndarray) -> float:
    """α such that exp(-α(d₂² - d₁²)) = 1/ASSIGNMENT_RATIO on average, with d₁, d₂ each feature's
    distances to its two nearest centroids."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    squared, _ = index.search(np.ascontiguousarray(features, dtype=np.float32), 2)
    gap = float(np.mean(squared[:, 1] - squared[:, 0]))
    if not gap > 0:
        raise InputError(
            "local features do not separate the centroids (zero distance gap); "
            "use more varied images"
        )
    return float(np.log(ASSIGNMENT_RATIO) / gap)


def initialize_netvlad(
    describer: Describer,
    images: Iterable[np.ndarray],
    per_image: int = 100,
    seed: int = 0,
    progress: bool = False,
) -> float:
    """Fits the describer's NetVLAD centroids to the images' local features; returns α."""
    features = sample_local_features(describer, images, per_image, seed, progress)
    pool = describer.model.pool
    centroids = kmeans_centroids(features, pool.num_clusters, seed)
    alpha = assignment_alpha(features, centroids)
    pool.init_from_centroids(centroids, alpha)
    log.info(
        "NetVLAD initialized: K=%d from %d local features, alpha=%.1f",
        pool.num_clusters,
        len(features),
        alpha,
    )
    return alpha
