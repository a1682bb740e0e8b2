"""Scoring a bag replayed through the live node: ground truth and header stamps from the bag, then
the recorded candidate tables and pose priors (as arrays; the ROS layer converts the messages)
against it — the retrieval metrics plus latency, throughput and pose-prior error."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ros2_netvlad.errors import NetVLADError
from ros2_netvlad.evaluation.decisions import decisions_table
from ros2_netvlad.evaluation.metrics import precision_first, retrieval_metrics
from ros2_netvlad.evaluation.per_query import decisions as query_decisions
from ros2_netvlad.evaluation.per_query import (
    group_table,
    per_group,
    table_columns,
    write_queries_csv,
)
from ros2_netvlad.evaluation.report import write_report
from ros2_netvlad.geometry import angle_between
from ros2_netvlad.sources.rosbag import PoseLookup, frames, open_bag, stamp_ns


def ground_truth(
    bag: Path, image_topic: str, poses: PoseLookup
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    truth = {}

    def record(pose, stamp) -> bool:
        truth[stamp] = (pose.position, pose.orientation)
        return False  # nothing decoded

    for _ in frames(bag, image_topic, poses, record, Counter()):
        pass
    return truth


def header_stamps(bag: Path, topic: str) -> dict[int, int]:
    """Bag log time → header stamp of each image message (to match publish times with outputs)."""
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return {
            t: stamp_ns(reader.deserialize(raw, c.msgtype).header)
            for c, t, raw in reader.messages(connections=connections)
        }


def score_replay(
    map_positions: np.ndarray,
    truth: dict[int, tuple[np.ndarray, np.ndarray]],
    published: dict[int, float],
    received: dict[int, float],
    tables: dict[int, np.ndarray],
    priors: dict[int, tuple[np.ndarray, np.ndarray]],
    duration: float,
    threshold: float,
    out: Path,
    name: str,
) -> dict:
    """Scores what the live node published for a replayed bag and writes the report.

    Keys are image header stamps: ``published`` / ``received`` monotonic times of each image and its
    candidates, ``tables`` the candidate tables (fields x, y, z, score), ``priors`` the pose priors
    as (position, quaternion xyzw), ``truth`` the ground-truth (position, quaternion)."""
    processed = [s for s in published if s in received and s in truth]
    if not processed:
        raise NetVLADError("the node produced no output for the replayed images (see node.log)")
    query_positions = np.stack([truth[s][0] for s in processed])
    ranked = [tables[s] for s in processed]  # as published: re-ranked when the node verifies
    reranked = "rerank_score" in ranked[0].dtype.names
    metrics, per_query = retrieval_metrics(
        *_ranking(ranked, "rerank_score" if reranked else "score"),
        query_positions,
        map_positions,
        threshold,
    )
    sections = {}
    if reranked:
        metrics["decisions"] = _decisions(
            ranked, per_query, query_positions, map_positions, threshold
        )
        sections["Loop-closure decisions"] = decisions_table(metrics["decisions"])
    answers = [table_columns(t) for t in ranked]
    decided = query_decisions(answers, query_positions, per_query["has_match"], threshold)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"{name}@{stamp}" for stamp in processed]
    write_queries_csv(out / "queries.csv", names, [name] * len(names), answers, decided)
    metrics["groups"] = per_group([name] * len(names), decided)
    sections["Per group (verified decision)"] = group_table(metrics["groups"])
    latencies = np.array([received[s] - published[s] for s in processed]) * 1000
    metrics.update(
        {
            "processed_frames": len(processed),
            "published_frames": len(published),
            "dropped_frames": len(published) - len([s for s in published if s in received]),
            "throughput_hz": round(len(processed) / duration, 3) if duration else 0.0,
            "latency_p50_ms": float(np.percentile(latencies, 50)),
            "latency_p95_ms": float(np.percentile(latencies, 95)),
            "latency_max_ms": float(latencies.max()),
        }
    )
    metrics.update(prior_errors(priors, truth))
    live = {
        k: metrics[k]
        for k in ("published_frames", "processed_frames", "dropped_frames", "throughput_hz")
    }
    live.update(
        {k: f"{metrics[k]:.1f}" for k in ("latency_p50_ms", "latency_p95_ms", "latency_max_ms")}
    )
    prior = {
        k: (f"{v:.2f}" if isinstance(v, float) else v)
        for k, v in metrics.items()
        if k.startswith("pose_prior")
    }
    write_report(
        out,
        f"Replay evaluation of {name} through the live node",
        metrics,
        per_query,
        map_positions,
        query_positions,
        {"Live node": live, "Pose prior": prior, **sections},
        latencies_ms=latencies,
    )
    return metrics


def _ranking(tables: list[np.ndarray], score: str, by_raw_score: bool = False):
    """(positions Q×K×3, scores Q×K) of the tables, in published order or by raw cosine score."""
    k = max((len(t) for t in tables), default=1) or 1
    positions = np.full((len(tables), k, 3), np.nan)
    scores = np.full((len(tables), k), -np.inf)
    for i, t in enumerate(tables):
        if by_raw_score:
            t = t[np.argsort(-t["score"], kind="stable")]
        positions[i, : len(t)] = np.stack([t["x"], t["y"], t["z"]], axis=1)
        scores[i, : len(t)] = t[score]
    return positions, scores


def _decisions(tables, reranked: dict, query_positions, map_positions, threshold) -> dict:
    """Raw (the candidates by cosine score), re-ranked (as published) and verified (the published
    best with verified = 1) loop-closure decisions, precision first."""
    _, raw = retrieval_metrics(
        *_ranking(tables, "score", by_raw_score=True), query_positions, map_positions, threshold
    )
    verified = np.array([len(t) > 0 and bool(t["verified"][0]) for t in tables])
    has_any = np.isfinite(raw["top1_score"])
    return {
        "raw": precision_first(raw, has_any),
        "reranked": precision_first(reranked, has_any),
        "verified": precision_first(reranked, verified),
    }


def prior_errors(priors: dict, truth: dict) -> dict:
    """Pose-prior error percentiles (metres, degrees) over the frames that had a prior."""
    pairs = [(priors[s], truth[s]) for s in priors if s in truth]
    if not pairs:
        return {"pose_prior_count": 0}
    position = np.array([np.linalg.norm(prior[0] - gt[0]) for prior, gt in pairs])
    angle = np.degrees([angle_between(prior[1], gt[1]) for prior, gt in pairs])
    out = {"pose_prior_count": len(pairs)}
    for q in (50, 90, 95):
        out[f"pose_prior_error_m_p{q}"] = float(np.percentile(position, q))
        out[f"pose_prior_error_deg_p{q}"] = float(np.percentile(angle, q))
    return out
