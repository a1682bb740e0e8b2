"""Offline evaluation: describe a query set with the map's model, search the map, score, report."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ros2_netvlad.config import DescriberConfig, LocalizerConfig
from ros2_netvlad.config_files import write_resolved_config
from ros2_netvlad.errors import InputError
from ros2_netvlad.evaluation.decisions import compare_decisions, decisions_table, offline_localizer
from ros2_netvlad.evaluation.metrics import retrieval_metrics
from ros2_netvlad.evaluation.per_query import (
    candidate_rows,
    group_table,
    per_group,
    source_group,
    write_queries_csv,
)
from ros2_netvlad.evaluation.per_query import decisions as query_decisions
from ros2_netvlad.evaluation.report import write_report
from ros2_netvlad.imaging import compressed_to_rgb
from ros2_netvlad.localization.pipeline import Pipeline
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.maps.opening import map_weights, open_map
from ros2_netvlad.sources.rosbag import Frame
from ros2_netvlad.sources.source import Source, every_frame


def map_image(database: MapDatabase, entry_id: int) -> np.ndarray | None:
    jpeg = database.image(entry_id)
    return None if jpeg is None else compressed_to_rgb(jpeg, "jpeg")


def evaluate(
    map_dir: Path,
    queries: list[Source],
    out: Path,
    threshold: float = 25.0,
    model_config: DescriberConfig = DescriberConfig(),
    top_n: int = 20,
    weights: str = "",
    progress: bool = True,
    force: bool = False,
    localizer: LocalizerConfig = LocalizerConfig(),
) -> dict:
    """Writes metrics.json, report.md and plots into ``out``; returns the metrics. Every query
    goes through the node's own ``Pipeline``; when the map stores local features,
    ``metrics["decisions"]`` compares the raw, re-ranked and verified loop-closure decisions
    (``localizer`` settings: verification, rerank_top_n, min_inliers). GNSS query sources are
    placed around the map's origin."""
    start = time.perf_counter()
    model_config = dataclasses.replace(model_config, weights=str(weights or ""))
    describer, database = open_map(map_dir, model_config, force=force)
    pipeline = Pipeline(describer, offline_localizer(database, localizer, top_n))
    frames, descriptors, decided, groups = [], [], [], []
    origin = database.manifest.geo_origin
    grouped = ((source_group(s), f) for s in queries for f in every_frame([s], origin))
    for group, query in tqdm(grouped, desc="describing queries", unit="img", disable=not progress):
        processed = pipeline.process(query.image, 0)
        descriptors.append(processed.descriptor)
        decided.append(processed.result.candidates)
        query.image = cv2.resize(query.image, (160, 120))  # kept for the report only
        frames.append(query)
        groups.append(group)
    if not frames:
        raise InputError("the query set is empty")
    scores, ids = database.search(np.stack(descriptors), top_n)
    map_positions = database.positions()
    retrieved = np.where((ids >= 0)[..., None], map_positions[np.clip(ids, 0, None)], np.nan)
    positions = np.stack([f.pose.position for f in frames])
    metrics, per_query = retrieval_metrics(retrieved, scores, positions, map_positions, threshold)
    sections = {}
    if pipeline.localizer.verifies:
        metrics["decisions"] = compare_decisions(
            pipeline.localizer, decided, per_query, positions, threshold
        )
        sections["Loop-closure decisions"] = decisions_table(metrics["decisions"])
    sections["Per group (verified decision)"] = _every_decision(
        out, frames, groups, decided, positions, per_query["has_match"], threshold, metrics
    )
    metrics.update(
        {
            "seconds": round(time.perf_counter() - start, 2),
            "model_fingerprint": database.manifest.model_fingerprint,
            "describer": describer.summary,
        }
    )
    failures = _worst_failures(frames, per_query, ids, database, map_positions, threshold)
    write_resolved_config(
        out,
        map=map_dir,
        weights=map_weights(Path(map_dir), weights),
        threshold=threshold,
        model=describer.config,
        describer=describer.summary,
        queries=len(frames),
        geo_origin=origin,
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


def _every_decision(out, frames, groups, decided, positions, has_match, threshold, metrics) -> str:
    """queries.csv and the per-group table (also in metrics["groups"])."""
    answers = [candidate_rows(candidates) for candidates in decided]
    decisions = query_decisions(answers, positions, has_match, threshold)
    out.mkdir(parents=True, exist_ok=True)
    write_queries_csv(out / "queries.csv", [f.name for f in frames], groups, answers, decisions)
    metrics["groups"] = per_group(groups, decisions)
    return group_table(metrics["groups"])


def _worst_failures(
    frames: list[Frame], per_query, ids, database, map_positions, threshold, count=4
):
    """The wrong top-1 results with the highest scores: the most confident mistakes."""
    wrong = np.flatnonzero(~per_query["top1_correct"] & np.isfinite(per_query["top1_score"]))
    worst = wrong[np.argsort(-per_query["top1_score"][wrong])][:count]
    strip = []
    for q in worst:
        here = frames[q].pose.position
        true = np.argmin(np.linalg.norm(map_positions - here, axis=1))
        score, off_by = per_query["top1_score"][q], per_query["top1_distance"][q]
        caption = f"{frames[q].name} score {score:.2f}, off by {off_by:.0f} m"
        right = (
            map_image(database, int(true))
            if np.linalg.norm(map_positions[true] - here) <= threshold
            else None
        )
        strip.append((caption, frames[q].image, map_image(database, int(ids[q, 0])), right))
    return strip
