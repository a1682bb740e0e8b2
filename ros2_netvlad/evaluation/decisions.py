"""Loop-closure decisions side by side, precision first: the raw descriptor ranking, the same
shortlist re-ranked by local-feature inliers, and the verified decision (inliers >= min_inliers),
made by the same ``Localizer`` code path as the live node."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.evaluation.metrics import precision_first, retrieval_metrics
from ros2_netvlad.localization.localizer import Candidate, Localizer
from ros2_netvlad.maps.database import MapDatabase


def offline_localizer(database: MapDatabase, config: LocalizerConfig, top_n: int) -> Localizer:
    """The node's localizer with the per-frame filters that need a live stream switched off (an
    offline query set has no time order to exclude by, and no consecutive frames to agree)."""
    return Localizer(
        database,
        replace(
            config,
            top_k=max(top_n, config.rerank_top_n),
            nms_radius=0.0,
            exclusion_window=0.0,
            consistency=1,
            min_score=-1.0,
        ),
    )


def compare_decisions(
    localizer: Localizer,
    results: list[list[Candidate]],
    raw: dict,
    query_positions: np.ndarray,
    threshold: float,
) -> dict[str, dict]:
    """{raw, reranked, verified} → precision-first metrics. ``raw`` is the per-query dict of the
    plain ranking (``retrieval_metrics``); the other two are each query's candidates as the
    pipeline decided them (re-ranked and verified)."""
    map_positions = localizer.database.positions()
    width = max((len(r) for r in results), default=1) or 1
    positions = np.full((len(results), width, 3), np.nan)
    scores = np.full((len(results), width), -np.inf)
    verified = np.zeros(len(results), bool)
    for q, candidates in enumerate(results):
        for rank, candidate in enumerate(candidates):
            positions[q, rank] = map_positions[candidate.map_id]
            scores[q, rank] = candidate.rerank_score
        verified[q] = bool(candidates) and candidates[0].verified
    _, reranked = retrieval_metrics(positions, scores, query_positions, map_positions, threshold)
    everything = np.isfinite(raw["top1_score"])
    min_score = localizer.config.min_score
    return {
        "raw": precision_first(raw, everything & (raw["top1_score"] >= min_score)),
        "reranked": precision_first(reranked, np.isfinite(reranked["top1_score"])),
        "verified": precision_first(reranked, verified),
    }


def decisions_table(decisions: dict[str, dict]) -> str:
    """Markdown: one row per decision."""
    keys = (
        "recall@1",
        "pr_auc",
        "recall_at_100_precision",
        "accepted",
        "precision",
        "recall",
        "false_loop_closures",
    )
    lines = ["| decision | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, values in decisions.items():
        cells = [
            f"{values[k]:.3f}" if isinstance(values[k], float) else str(values[k]) for k in keys
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
