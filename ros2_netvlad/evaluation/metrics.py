"""Pure retrieval and loop-closure metrics: Recall@N, per-query ranks, precision-recall over the
score threshold, its area, and the recall at 100 % precision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ros2_netvlad.errors import InputError

RECALL_NS = (1, 5, 10, 20)


def recall_at_n(
    retrieved: np.ndarray, correct: Sequence[Iterable[int]], ns: Sequence[int] = RECALL_NS
) -> dict[int, float]:
    """Fraction of queries with at least one correct database id among their first N retrieved.

    retrieved: Q×M database ids, best first. correct: for each query, the ids that count as right.
    Queries with no correct id at all still count (as misses), as in the NetVLAD evaluation.
    """
    ranks = first_correct_ranks(retrieved, correct)
    return {n: float(np.mean((ranks >= 0) & (ranks < n))) if len(ranks) else 0.0 for n in ns}


def first_correct_ranks(retrieved: np.ndarray, correct: Sequence[Iterable[int]]) -> np.ndarray:
    """Per query, the 0-based rank of the first correct result, or -1 when none was retrieved."""
    retrieved = np.asarray(retrieved)
    if len(retrieved) != len(correct):
        raise InputError(f"{len(retrieved)} result rows for {len(correct)} queries")
    ranks = []
    for row, ids in zip(retrieved, correct):
        hits = np.flatnonzero(np.isin(row, np.fromiter(ids, dtype=np.int64)))
        ranks.append(int(hits[0]) if len(hits) else -1)
    return np.array(ranks, dtype=np.int64)


def within(
    query_positions: np.ndarray, map_positions: np.ndarray, threshold: float
) -> list[np.ndarray]:
    """For each query, the ids of map entries within ``threshold`` metres (chunked brute force)."""
    query_positions, map_positions = (
        np.asarray(query_positions, float),
        np.asarray(map_positions, float),
    )
    out = []
    for start in range(0, len(query_positions), 256):
        chunk = query_positions[start : start + 256]
        d2 = ((chunk[:, None, :] - map_positions[None, :, :]) ** 2).sum(-1)
        out += [np.flatnonzero(row <= threshold**2) for row in d2]
    return out


@dataclass(frozen=True)
class PrecisionRecall:
    thresholds: np.ndarray  # descending score thresholds
    precision: np.ndarray
    recall: np.ndarray
    auc: float  # average precision: Σ (R_i - R_{i-1}) P_i
    recall_at_full_precision: float


def precision_recall(
    top1_scores: np.ndarray, top1_correct: np.ndarray, has_match: np.ndarray
) -> PrecisionRecall:
    """Loop-closure decisions "accept the best candidate when its score ≥ τ", swept over τ.

    Precision = correct accepted / accepted; recall = correct accepted / queries that have a true
    match in the map. Queries without any candidate have score -inf (never accepted).
    """
    scores = np.asarray(top1_scores, float)
    correct = np.asarray(top1_correct, bool)
    positives = int(np.sum(has_match))
    order = np.argsort(-scores, kind="stable")
    scores, correct = scores[order], correct[order]
    finite = np.isfinite(scores)
    scores, correct = scores[finite], correct[finite]
    if positives == 0 or len(scores) == 0:
        empty = np.zeros(0)
        return PrecisionRecall(empty, empty, empty, 0.0, 0.0)
    true_positives = np.cumsum(correct)
    accepted = np.arange(1, len(scores) + 1)
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]  # one point per distinct threshold
    precision = (true_positives / accepted)[last_of_tie]
    recall = (true_positives / positives)[last_of_tie]
    thresholds = scores[last_of_tie]
    auc = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    perfect = recall[precision >= 1.0 - 1e-12]
    return PrecisionRecall(
        thresholds, precision, recall, auc, float(perfect.max()) if len(perfect) else 0.0
    )


def retrieval_metrics(
    retrieved_positions: np.ndarray,
    scores: np.ndarray,
    query_positions: np.ndarray,
    map_positions: np.ndarray,
    threshold: float,
) -> tuple[dict, dict]:
    """Metrics for Q queries with up to M results each (positions Q×M×3, NaN-padded; scores Q×M,
    -inf padded). Returns (flat metrics, per-query arrays)."""
    q = np.asarray(query_positions, float)
    distance = np.linalg.norm(np.asarray(retrieved_positions, float) - q[:, None, :], axis=-1)
    hit = np.nan_to_num(distance, nan=np.inf) <= threshold
    ranks = np.array(
        [int(np.flatnonzero(row)[0]) if row.any() else -1 for row in hit], dtype=np.int64
    )
    has_match = np.array([len(ids) > 0 for ids in within(q, map_positions, threshold)])
    top1_scores = np.asarray(scores, float)[:, 0] if len(scores) else np.zeros(0)
    pr = precision_recall(top1_scores, hit[:, 0] if len(hit) else np.zeros(0, bool), has_match)
    metrics = {
        f"recall@{n}": float(np.mean((ranks >= 0) & (ranks < n))) if len(ranks) else 0.0
        for n in RECALL_NS
    }
    metrics.update(
        {
            "pr_auc": pr.auc,
            "recall_at_100_precision": pr.recall_at_full_precision,
            "num_queries": int(len(q)),
            "num_queries_with_true_match": int(has_match.sum()),
            "num_map_entries": int(len(map_positions)),
            "threshold_m": float(threshold),
        }
    )
    per_query = {
        "rank": ranks,
        "top1_correct": hit[:, 0] if len(hit) else np.zeros(0, bool),
        "has_match": has_match,
        "top1_score": top1_scores,
        "top1_distance": distance[:, 0] if len(distance) else np.zeros(0),
        "pr": pr,
    }
    return metrics, per_query


def decision_metrics(accepted: np.ndarray, correct: np.ndarray, has_match: np.ndarray) -> dict:
    """One fixed loop-closure decision per query (accept its best candidate or not): precision,
    recall over the queries that have a true match, and the false loop closures it lets through."""
    accepted, correct = np.asarray(accepted, bool), np.asarray(correct, bool)
    true_accepted = int(np.sum(accepted & correct))
    positives = int(np.sum(has_match))
    return {
        "accepted": int(accepted.sum()),
        "precision": true_accepted / int(accepted.sum()) if accepted.any() else 1.0,
        "recall": true_accepted / positives if positives else 0.0,
        "false_loop_closures": int(np.sum(accepted & ~correct)),
    }


def precision_first(per_query: dict, accepted_at_defaults: np.ndarray) -> dict:
    """The precision-first view of one ranking: PR-AUC and recall at 100 % precision over its
    score threshold, and what its default decision accepts."""
    pr = per_query["pr"]
    return {
        "recall@1": float(np.mean(per_query["rank"] == 0)) if len(per_query["rank"]) else 0.0,
        "pr_auc": pr.auc,
        "recall_at_100_precision": pr.recall_at_full_precision,
        **decision_metrics(accepted_at_defaults, per_query["top1_correct"], per_query["has_match"]),
    }
