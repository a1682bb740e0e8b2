"""Every decision, one row per query (``queries.csv``): what the pipeline answered (the published
order: top-k map ids, scores, inliers), whether its best row was verified, whether that was
right, and how far off it was; and recall at 100 % precision of the verified decision per group
of queries (a bag, or an image folder), so a user sees where the decision rule breaks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ros2_netvlad.evaluation.metrics import precision_recall

COLUMNS = (
    "query",
    "group",
    "has_true_match",
    "top_ids",
    "top_scores",
    "top_inliers",
    "verified",
    "acceptance",
    "correct",
    "distance_m",
)


def candidate_rows(candidates) -> dict[str, np.ndarray]:
    """A list of localizer Candidates as the table columns the node publishes."""
    return {
        "map_id": np.array([c.map_id for c in candidates], np.int64),
        "score": np.array([c.score for c in candidates], float),
        "inliers": np.array([c.inliers for c in candidates], np.int64),
        "verified": np.array([c.verified for c in candidates], bool),
        "acceptance": np.array([c.acceptance for c in candidates], np.int64),
        "rerank_score": np.array([c.rerank_score for c in candidates], float),
        "position": np.array([c.entry.position for c in candidates], float).reshape(-1, 3),
    }


def table_columns(table: np.ndarray) -> dict[str, np.ndarray]:
    """A published ~/loop_closures table (structured rows) as the same columns."""
    names = table.dtype.names
    inliers = table["inliers"] if "inliers" in names else np.zeros(len(table), int)
    ranking = table["rerank_score"] if "rerank_score" in names else table["score"]
    verified = table["verified"].astype(bool)
    # tables before `acceptance` accepted a row on its own inliers only
    acceptance = table["acceptance"] if "acceptance" in names else verified
    return {
        "map_id": table["map_id"].astype(np.int64),
        "score": table["score"].astype(float),
        "inliers": inliers.astype(np.int64),
        "verified": verified,
        "acceptance": acceptance.astype(np.int64),
        "rerank_score": ranking.astype(float),
        "position": np.stack([table["x"], table["y"], table["z"]], axis=1).astype(float),
    }


def source_group(source) -> str:
    """A query source's group name: its bag's or folder's name (else what the source calls
    itself)."""
    where = getattr(source, "path", None) or getattr(source, "folder", None)
    return Path(where).name if where else str(source.name)


def decisions(
    answers: list[dict[str, np.ndarray]], query_positions: np.ndarray, has_match: np.ndarray,
    threshold: float,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per query: the best row verified (and what accepted it), correct (within ``threshold``
    of the truth), its distance, and the score the verified decision sorts by (-inf when not
    verified)."""
    count = len(answers)
    verified, correct = np.zeros(count, bool), np.zeros(count, bool)
    acceptance = np.zeros(count, np.int64)
    distance, ranking = np.full(count, np.nan), np.full(count, -np.inf)
    for q, answer in enumerate(answers):
        if not len(answer["map_id"]):
            continue
        distance[q] = float(np.linalg.norm(answer["position"][0] - query_positions[q]))
        correct[q] = distance[q] <= threshold
        verified[q] = bool(answer["verified"][0])
        if verified[q]:
            ranking[q] = answer["rerank_score"][0]
            acceptance[q] = answer["acceptance"][0] if "acceptance" in answer else 1
    return {
        "verified": verified,
        "acceptance": acceptance,
        "correct": correct,
        "distance": distance,
        "ranking": ranking,
        "has_match": np.asarray(has_match, bool),
    }


def write_queries_csv(
    path: Path, names: list[str], groups: list[str], answers: list[dict], decided: dict
) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for q, (name, group, answer) in enumerate(zip(names, groups, answers)):
            writer.writerow(
                [
                    name,
                    group,
                    int(decided["has_match"][q]),
                    ";".join(str(int(i)) for i in answer["map_id"]),
                    ";".join(f"{s:.4f}" for s in answer["score"]),
                    ";".join(str(int(n)) for n in answer["inliers"]),
                    int(decided["verified"][q]),
                    int(decided["acceptance"][q]),
                    int(decided["correct"][q]),
                    "" if np.isnan(decided["distance"][q]) else f"{decided['distance'][q]:.2f}",
                ]
            )
    return path


def per_group(groups: list[str], decided: dict) -> dict[str, dict]:
    """The verified decision per group: queries, with a true match, accepted, false, recall and
    recall at 100 % precision (sweeping the verified rows' rerank score)."""
    out = {}
    groups_array = np.array(groups)
    for group in dict.fromkeys(groups):
        inside = groups_array == group
        accepted = decided["verified"][inside]
        correct = decided["correct"][inside]
        has_match = decided["has_match"][inside]
        right = int(np.sum(accepted & correct))
        pr = precision_recall(decided["ranking"][inside], correct, has_match)
        out[group] = {
            "queries": int(inside.sum()),
            "with_true_match": int(has_match.sum()),
            "accepted": int(accepted.sum()),
            "false": int(np.sum(accepted & ~correct)),
            "recall": right / max(int(has_match.sum()), 1),
            "recall_at_100_precision": pr.recall_at_full_precision,
            # what accepted them: 1 own inliers, 2 a weak sequence, 3 odometry tracking
            "by_acceptance": {
                str(a): int(np.sum(decided["acceptance"][inside] == a)) for a in (1, 2, 3)
            },
        }
    return out


def group_table(groups: dict[str, dict]) -> str:
    lines = [
        "| group | queries | with true match | accepted (verified) | false | recall | R@100%P |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, g in groups.items():
        lines.append(
            f"| {name} | {g['queries']} | {g['with_true_match']} | {g['accepted']} | {g['false']} "
            f"| {g['recall']:.3f} | {g['recall_at_100_precision']:.3f} |"
        )
    return "\n".join(lines) + "\n\nEvery decision: [queries.csv](queries.csv)."
