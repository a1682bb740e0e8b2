"""Pure retrieval metrics."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def recall_at_n(retrieved: np.ndarray, correct: Sequence[Iterable[int]], ns: Sequence[int] = (1, 5, 10, 20)) -> dict[int, float]:
    """Fraction of queries with at least one correct database id among their first N retrieved.

    retrieved: Q×M database ids, best first. correct: for each query, the ids that count as right.
    Queries with no correct id at all still count (as misses), as in the NetVLAD evaluation.
    """
    retrieved = np.asarray(retrieved)
    if len(retrieved) != len(correct):
        raise ValueError(f"{len(retrieved)} result rows for {len(correct)} queries")
    first_hit = np.array([_first_hit(row, set(ids)) for row, ids in zip(retrieved, correct)])
    return {n: float(np.mean(first_hit < n)) if len(first_hit) else 0.0 for n in ns}


def _first_hit(row: np.ndarray, ids: set[int]) -> int:
    hits = [rank for rank, index in enumerate(row) if int(index) in ids]
    return hits[0] if hits else np.iinfo(np.int64).max


def top_k(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product search: (scores, ids), each Q×k, best first."""
    k = min(k, len(database))
    similarity = queries @ database.T
    ids = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(similarity, ids, axis=1), ids
