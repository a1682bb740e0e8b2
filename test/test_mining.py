"""Triplet mining against brute force on seeded synthetic data."""

import numpy as np
import pytest
import torch

from ros2_netvlad.training.mining import best_positive, hard_negatives, triplet_loss, triplet_sets


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_triplet_sets_by_radius_and_skipped_queries():
    db = np.array([[0, 0, 0], [8, 0, 0], [20, 0, 0], [100, 0, 0.0]])
    queries = np.array([[1, 0, 0], [50, 0, 0], [99, 0, 0.0]])
    sets = triplet_sets(queries, db, 10.0, 25.0)
    np.testing.assert_array_equal(sets.queries, [0, 2])
    assert sets.skipped == 1  # the query at 50 m has no potential positive
    assert [list(p) for p in sets.positives] == [[0, 1], [3]]
    assert [list(n) for n in sets.non_negatives] == [[0, 1, 2], [3]]
    with pytest.raises(ValueError, match="exceeds the negative radius"):
        triplet_sets(queries, db, 30.0, 25.0)


def test_best_positive_is_nearest_in_descriptor_space():
    rng = np.random.default_rng(0)
    database = unit(rng.normal(size=(50, 8)))
    query = unit(database[7] + 0.05 * rng.normal(size=8))
    assert best_positive(query, database, np.array([3, 7, 12])) == 7


def test_hard_negatives_match_brute_force():
    rng = np.random.default_rng(1)
    database = unit(rng.normal(size=(300, 16))).astype(np.float32)
    query = database[0]
    non_negatives = np.arange(0, 5)
    got = hard_negatives(
        query,
        database,
        non_negatives,
        positive_id=1,
        rng=np.random.default_rng(2),
        sample=10_000,
        keep=10,
        margin=0.5,
    )
    d = np.sum((database - query) ** 2, axis=1)
    allowed = np.setdiff1d(np.arange(300), non_negatives)
    violating = allowed[d[allowed] < d[1] + 0.5]
    want = violating[np.argsort(d[violating], kind="stable")][:10]
    np.testing.assert_array_equal(got, want)
    assert not set(got) & set(non_negatives)


def test_remembered_negatives_are_reconsidered():
    rng = np.random.default_rng(3)
    database = unit(rng.normal(size=(2000, 16))).astype(np.float32)
    query = database[0]
    d = np.sum((database - query) ** 2, axis=1)
    hardest = int(np.argsort(d)[1])  # the hardest negative overall
    got = hard_negatives(
        query,
        database,
        np.array([0]),
        positive_id=0,
        rng=np.random.default_rng(4),
        sample=5,
        keep=3,
        margin=4.0,
        remembered=[hardest],
    )
    assert got[0] == hardest


def test_triplet_loss_by_hand():
    q, p = torch.tensor([1.0, 0.0]), torch.tensor([0.8, 0.6])  # ‖q−p‖² = 0.4
    negatives = torch.tensor([[0.6, 0.8], [-1.0, 0.0]])  # 0.8 and 4.0
    assert float(triplet_loss(q, p, negatives, margin=0.5)) == pytest.approx(
        0.1
    )  # 0.4+0.5-0.8, and 0
    assert float(triplet_loss(q, p, negatives, margin=0.3)) == pytest.approx(0.0)
