"""Scoring a bag replayed through the live node: ground truth and header stamps from the bag, then
the recorded candidate tables and pose priors (as arrays; the ROS layer converts the messages)
against it — the retrieval metrics plus latency, throughput and pose-prior error."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ros2_netvlad.errors import NetVLADError
from ros2_netvlad.evaluation.metrics import retrieval_metrics
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
    k = max((len(tables[s]) for s in processed), default=1) or 1
    positions = np.full((len(processed), k, 3), np.nan)
    scores = np.full((len(processed), k), -np.inf)
    for i, s in enumerate(processed):
        t = tables[s]
        positions[i, : len(t)] = np.stack([t["x"], t["y"], t["z"]], axis=1)
        scores[i, : len(t)] = t["score"]
    query_positions = np.stack([truth[s][0] for s in processed])
    metrics, per_query = retrieval_metrics(
        positions, scores, query_positions, map_positions, threshold
    )
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
        {"Live node": live, "Pose prior": prior},
        latencies_ms=latencies,
    )
    return metrics


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
