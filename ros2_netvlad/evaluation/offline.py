"""Offline evaluation: describe a query set with the map's model, search the map, score, report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from ros2_netvlad.config import DescriberConfig, LocalizerConfig
from ros2_netvlad.config_files import write_resolved_config
from ros2_netvlad.errors import InputError
from ros2_netvlad.evaluation.decisions import compare_decisions, decisions_table, offline_localizer
from ros2_netvlad.evaluation.metrics import retrieval_metrics
from ros2_netvlad.evaluation.report import write_report
from ros2_netvlad.imaging import compressed_to_rgb
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.model.checkpoints import fingerprint
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.weights import load
from ros2_netvlad.sources import folders as datasets
from ros2_netvlad.sources import rosbag as bags


@dataclass
class QueryFrame:
    name: str
    image: np.ndarray
    position: np.ndarray
    stamp_ns: int = 0


def bag_queries(bag: Path, image_topic: str, poses: bags.PoseLookup) -> Iterator[QueryFrame]:
    for frame in bags.frames(bag, image_topic, poses):
        yield QueryFrame(
            f"{bag.name}@{frame.stamp_ns}", frame.image, frame.pose.position, frame.stamp_ns
        )


def folder_queries(posed: list[datasets.PosedImage]) -> Iterator[QueryFrame]:
    for i, item in enumerate(posed):
        yield QueryFrame(item.path.name, datasets.read_rgb(item.path), item.pose.position, i)


def map_image(database: MapDatabase, entry_id: int) -> np.ndarray | None:
    jpeg = database.image(entry_id)
    return None if jpeg is None else compressed_to_rgb(jpeg, "jpeg")


def evaluate(
    map_dir: Path,
    queries: Iterator[QueryFrame],
    out: Path,
    threshold: float = 25.0,
    model_config: DescriberConfig = DescriberConfig(),
    top_n: int = 20,
    weights: str = "",
    progress: bool = True,
    force: bool = False,
    localizer: LocalizerConfig = LocalizerConfig(),
) -> dict:
    """Writes metrics.json, report.md and plots into ``out``; returns the metrics. When the map
    stores local features, ``metrics["decisions"]`` compares the raw, re-ranked and verified
    loop-closure decisions (``localizer`` settings: verification, rerank_top_n, min_inliers)."""
    start = time.perf_counter()
    model = load(weights or Path(map_dir) / "model.pt")
    database = MapDatabase.load(map_dir, fingerprint(model))
    describer = Describer(model, database.resize_config(model_config, force), database.precision)
    reranker = offline_localizer(database, localizer, top_n)
    frames, descriptors, features = [], [], []
    for query in tqdm(queries, desc="describing queries", unit="img", disable=not progress):
        descriptors.append(describer(query.image))
        features.append(reranker.local_features(query.image))
        frames.append(
            QueryFrame(
                query.name, cv2.resize(query.image, (160, 120)), query.position, query.stamp_ns
            )
        )
    if not frames:
        raise InputError("the query set is empty")
    scores, ids = database.search(np.stack(descriptors), top_n)
    map_positions = database.positions()
    retrieved = np.where((ids >= 0)[..., None], map_positions[np.clip(ids, 0, None)], np.nan)
    positions = np.stack([f.position for f in frames])
    metrics, per_query = retrieval_metrics(retrieved, scores, positions, map_positions, threshold)
    sections = {}
    if reranker.verifies:
        metrics["decisions"] = compare_decisions(
            reranker, np.stack(descriptors), features, per_query, positions, threshold
        )
        sections["Loop-closure decisions"] = decisions_table(metrics["decisions"])
    metrics.update(
        {
            "seconds": round(time.perf_counter() - start, 2),
            "model_fingerprint": database.fingerprint,
            "describer": describer.summary,
        }
    )
    failures = _worst_failures(frames, per_query, ids, database, map_positions, threshold)
    write_resolved_config(
        out,
        map=map_dir,
        weights=weights or Path(map_dir) / "model.pt",
        threshold=threshold,
        model=describer.config,
        describer=describer.summary,
        queries=len(frames),
        geo_origin=database.geo_origin,
    )
    write_report(
        out,
        f"Evaluation of {Path(map_dir).name}",
        metrics,
        per_query,
        map_positions,
        positions,
        extra_sections=sections,
        failures=failures,
    )
    return metrics


def _worst_failures(frames, per_query, ids, database, map_positions, threshold, count=4):
    """The wrong top-1 results with the highest scores: the most confident mistakes."""
    wrong = np.flatnonzero(~per_query["top1_correct"] & np.isfinite(per_query["top1_score"]))
    worst = wrong[np.argsort(-per_query["top1_score"][wrong])][:count]
    strip = []
    for q in worst:
        true = np.argmin(np.linalg.norm(map_positions - frames[q].position, axis=1))
        score, off_by = per_query["top1_score"][q], per_query["top1_distance"][q]
        caption = f"{frames[q].name} score {score:.2f}, off by {off_by:.0f} m"
        right = (
            map_image(database, int(true))
            if np.linalg.norm(map_positions[true] - frames[q].position) <= threshold
            else None
        )
        strip.append((caption, frames[q].image, map_image(database, int(ids[q, 0])), right))
    return strip
