"""Weakly supervised triplet mining (NetVLAD §4): pure functions on positions and descriptors.

GPS only says which database images *may* show the query's place (potential positives, within
10 m) and which surely do not (definite negatives, beyond 25 m). The best-matching potential
positive is the one closest in descriptor space; hard negatives are the closest definite negatives
that violate the margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch

from ros2_netvlad.errors import InputError
from ros2_netvlad.evaluation.metrics import within


@dataclass(frozen=True)
class TripletSets:
    """Per usable query: its potential positives and its non-negatives (everything within the
    negative radius); queries with no potential positive are skipped and counted."""

    queries: np.ndarray  # indices of usable queries
    positives: list[np.ndarray]
    non_negatives: list[np.ndarray]
    skipped: int


def triplet_sets(
    query_positions: np.ndarray,
    db_positions: np.ndarray,
    positive_radius: float = 10.0,
    negative_radius: float = 25.0,
) -> TripletSets:
    if positive_radius > negative_radius:
        raise InputError(
            f"positive radius {positive_radius} m exceeds the negative radius {negative_radius} m"
        )
    positives = within(query_positions, db_positions, positive_radius)
    non_negatives = within(query_positions, db_positions, negative_radius)
    usable = np.array([i for i, p in enumerate(positives) if len(p)], dtype=np.int64)
    return TripletSets(
        usable,
        [positives[i] for i in usable],
        [non_negatives[i] for i in usable],
        len(positives) - len(usable),
    )


Descriptors = Union[np.ndarray, torch.Tensor]


def squared_distances(query: Descriptors, database: Descriptors, ids: np.ndarray) -> np.ndarray:
    """‖q − db[i]‖² for the given ids, in fp32, wherever the database lives (CPU or an fp16 GPU
    cache)."""
    database = torch.as_tensor(database)
    query = torch.as_tensor(query, device=database.device).float()
    rows = database[torch.as_tensor(np.asarray(ids, np.int64), device=database.device)].float()
    # ‖r‖² − 2r·q + ‖q‖²: reads the gathered rows twice instead of writing r − q and its square
    squared = torch.einsum("ij,ij->i", rows, rows) - 2.0 * (rows @ query) + query.dot(query)
    return squared.clamp_(min=0).cpu().numpy()


def best_positive(query: Descriptors, database: Descriptors, positive_ids: np.ndarray) -> int:
    """The potential positive closest to the query in descriptor space."""
    return int(positive_ids[np.argmin(squared_distances(query, database, positive_ids))])


def hard_negatives(
    query: Descriptors,
    database: Descriptors,
    non_negative_ids: np.ndarray,
    positive_id: int,
    rng: np.random.Generator,
    sample: int = 1000,
    keep: int = 10,
    margin: float = 0.1,
    remembered: Sequence[int] = (),
) -> np.ndarray:
    """Up to ``keep`` negatives, hardest first, among ``sample`` random definite negatives plus the
    ones remembered from earlier epochs, that violate d(q,n)² < d(q,p)² + margin."""
    excluded = np.zeros(len(database), bool)
    excluded[non_negative_ids] = True
    negatives = np.flatnonzero(~excluded)
    if len(negatives) == 0:
        return np.zeros(0, np.int64)
    drawn = rng.choice(negatives, size=min(sample, len(negatives)), replace=False)
    remembered = np.array([r for r in remembered if not excluded[r]], dtype=np.int64)
    candidates = np.unique(np.concatenate([drawn, remembered]))
    d_neg = squared_distances(query, database, candidates)
    d_pos = float(squared_distances(query, database, np.array([positive_id]))[0])
    violating = d_neg < d_pos + margin
    order = np.argsort(d_neg[violating], kind="stable")[:keep]
    return candidates[violating][order]


def triplet_loss(
    query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, margin: float = 0.1
) -> torch.Tensor:
    """Σ_j max(0, ‖q−p‖² + m − ‖q−n_j‖²) for one query (D), positive (D) and negatives (J×D)."""
    d_pos = torch.sum((query - positive) ** 2)
    d_neg = torch.sum((negatives - query[None]) ** 2, dim=1)
    return torch.clamp(d_pos + margin - d_neg, min=0).sum()
