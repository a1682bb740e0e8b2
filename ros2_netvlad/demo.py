"""The demo: real photographs → NetVLAD map → revisits under changed conditions → Recall@N.

The trained-free model is EfficientNet-Lite0 with its ImageNet weights and NetVLAD centroids
fitted by k-means on the map's own views; the same pipeline with a randomly initialized backbone is
run beside it as the baseline a real model must beat.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import world
from .clustering import initialize_netvlad
from .config import ArchConfig, ModelConfig
from .describe import Describer, describe_all
from .evaluation import recall_at_n, top_k
from .model import build_model
from .weights import save

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    places: int = 20
    map_views_per_place: int = 2
    seed: int = 0
    num_clusters: int = 32
    model: ModelConfig = field(default_factory=lambda: ModelConfig(max_side=320))


@dataclass
class DemoResult:
    recall: dict[str, dict[int, float]]
    num_map: int
    num_queries: int
    seconds: float
    out_dir: Path


def run_demo(out_dir: str | Path, config: DemoConfig = DemoConfig()) -> DemoResult:
    """Renders the world, builds the map with the pretrained and the random model, scores both."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    map_views, map_ids, queries, query_ids = _render(config)
    recall = {}
    for name, pretrained in (("efficientnet_lite0 + NetVLAD (k-means)", True), ("random backbone", False)):
        model = build_model(ArchConfig("efficientnet_lite0", config.num_clusters), pretrained=pretrained)
        describer = Describer(model, config.model)
        initialize_netvlad(describer, map_views, per_image=100, seed=config.seed)
        database, described = describe_all(describer, map_views), describe_all(describer, queries)
        _, retrieved = top_k(described, database, 20)
        recall[name] = recall_at_n(map_ids[retrieved], [[q] for q in query_ids])
        if pretrained:
            save(model, out_dir / "model.pt")
    result = DemoResult(recall, len(map_views), len(queries), time.perf_counter() - start, out_dir)
    (out_dir / "metrics.json").write_text(json.dumps({k: {f"recall@{n}": v for n, v in r.items()}
                                                      for k, r in recall.items()}, indent=2))
    return result


def _render(config: DemoConfig) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], list[int]]:
    rng = np.random.default_rng(config.seed)
    map_views, map_ids, queries, query_ids = [], [], [], []
    for place in world.places(config.places):
        for _ in range(config.map_views_per_place):
            map_views.append(world.render_view(place, rng))
            map_ids.append(place.index)
        queries.append(world.render_view(place, rng, changed=True))
        query_ids.append(place.index)
    return map_views, np.array(map_ids), queries, query_ids


def summary(result: DemoResult) -> str:
    lines = [f"map: {result.num_map} views, queries: {result.num_queries} revisits under changed conditions",
             f"{'model':<42}{'R@1':>7}{'R@5':>7}{'R@10':>7}"]
    for name, recall in result.recall.items():
        lines.append(f"{name:<42}{recall[1]:>7.2f}{recall[5]:>7.2f}{recall[10]:>7.2f}")
    lines.append(f"done in {result.seconds:.0f} s; model and metrics in {result.out_dir}/")
    return "\n".join(lines)
