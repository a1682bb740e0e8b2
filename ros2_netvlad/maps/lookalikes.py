"""A map's own look-alikes: its entries verified against their most similar entries from *other*
places, and how many inliers those wrong pairs reach. The localizer's effective ``min_inliers``
is the larger of its configured floor and a high quantile of this distribution plus a margin, so
a self-similar corridor gets a stricter gate than a textured street. A pair that reaches the floor
itself is the same scene at two places: its entries are *aliased* (closures to them need the
odometry's confirmation, localizer.lookalike_aliasing).

"Other place": more than ``radius`` metres apart, or, when the map has no positions (all at the
origin), more than ``gap`` entries apart in map order."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.maps.manifest import RADIUS, Lookalikes
from ros2_netvlad.verification.features import FeatureSettings
from ros2_netvlad.verification.registry import make_verifier

GAP = 20  # entries apart in map order, for maps without positions
SAMPLE = 200  # entries measured, evenly spread
NEIGHBOURS = 10  # the most similar entries searched for one from another place


def measure_lookalikes(
    database: MapDatabase, radius: float = RADIUS, sample: int = SAMPLE
) -> Lookalikes | None:
    """Verifies up to ``sample`` entries against their most similar entry from another place
    (descriptor search, then the map's own verifier on the stored features). None when the map
    stores no local features."""
    settings = database.manifest.local_features
    count = len(database)
    if settings is None or count < 2:
        return None
    positions = database.positions()
    placed = bool(np.any(positions))
    chosen = np.unique(np.linspace(0, count - 1, min(sample, count)).round().astype(int))
    descriptors = database.descriptors()[chosen]
    _, ids = database.search(descriptors, min(NEIGHBOURS + 1, count))
    pairs = []
    for entry, row in zip(chosen, ids):
        for other in row[row >= 0]:
            if _other_place(entry, int(other), positions, placed, radius):
                pairs.append((int(entry), int(other)))
                break
    if not pairs:
        return Lookalikes((), radius)
    features = database.local_features(sorted({i for pair in pairs for i in pair}))
    pairs = [(a, b) for a, b in pairs if a in features and b in features]
    # SIFT maps are matched as SIFT or RootSIFT (localizer.root_sift): the larger count of the two
    counts = [_inliers(make_verifier(s), features, pairs) for s in _matchings(settings)]
    measured = sorted(zip(np.max(counts, axis=0).tolist(), pairs))
    return Lookalikes(tuple(n for n, _ in measured), radius, tuple(p for _, p in measured))


def _matchings(settings: FeatureSettings) -> list[FeatureSettings]:
    return [settings, replace(settings, root=True)] if settings.method == "sift" else [settings]


def _inliers(verifier, features: dict, pairs: list[tuple[int, int]]) -> list[int]:
    prepared = {i: verifier.prepare(f) for i, f in features.items()}
    return [int(verifier.evidence(prepared[a], prepared[b], 8).inliers) for a, b in pairs]


def _other_place(a: int, b: int, positions: np.ndarray, placed: bool, radius: float) -> bool:
    if placed:
        return float(np.linalg.norm(positions[a] - positions[b])) > radius
    return abs(a - b) > GAP
