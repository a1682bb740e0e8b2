"""Loop closures a SLAM back-end can trust: what re-ranking and verification buy, what they cost.

1. Shortlist quality on the real development set (evaluation/realset.py): EfficientNet-Lite0
   (ImageNet weights) with NetVLAD fitted on the map at K = 8/16/32/64, against plain GeM pooling
   of the same backbone (p = 3): Recall@1 of the queries that have a true match, PR-AUC and recall
   at 100 % precision of "accept the top-1 if its score >= t".
2. Decisions side by side (raw descriptor ranking, re-ranked by local-feature inliers, verified
   at min_inliers) for SIFT and ORB local features, on the real set and on the demo world.
3. Cost per 640x480 frame on this CPU: the global descriptor, the query's local features, and
   re-ranking + verification of a top-10 shortlist; local-feature storage per map entry.

Run: `.venv/bin/python benchmarks/loop_closure.py` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ros2_netvlad.config import ArchConfig, DescriberConfig, LocalizerConfig
from ros2_netvlad.demo import world
from ros2_netvlad.demo.run import IMAGE_TOPIC as DEMO_TOPIC
from ros2_netvlad.demo.run import ODOM_TOPIC
from ros2_netvlad.evaluation.decisions import decisions_table
from ros2_netvlad.evaluation.metrics import retrieval_metrics
from ros2_netvlad.evaluation.offline import evaluate
from ros2_netvlad.evaluation.realset import assemble
from ros2_netvlad.maps.building import BuildOptions, build_map
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.sources.folders import folder_images, read_rgb
from ros2_netvlad.sources.rosbag import PoseLookup
from ros2_netvlad.sources.source import BagSource, FolderSource
from ros2_netvlad.verification.features import FeatureSettings
from ros2_netvlad.verification.registry import make_verifier

THRESHOLD_REAL = 10.0  # metres: the real set's places are 100 m apart


def build(out: Path, source, clusters: int, features: FeatureSettings | None, side: int) -> Path:
    torch.manual_seed(0)
    model = build_model(ArchConfig("efficientnet_lite0", clusters), pretrained=True)
    options = BuildOptions(
        model=DescriberConfig(max_side=side),
        fit_clusters=True,
        local_features=features,
        progress=False,
    )
    build_map(out, [source], model, options)
    return out


def matched_recall(metrics: dict) -> float:
    """Recall@1 over the queries that have a true match (no-match queries cannot be right)."""
    return metrics["recall@1"] * metrics["num_queries"] / metrics["num_queries_with_true_match"]


def shortlist_study(realset, root: Path) -> None:
    print("\n## 1. Shortlist on the real set (raw descriptor ranking)\n")
    print("| pooling | dims | R@1 (matched) | PR-AUC | recall@100%P |\n|---|---|---|---|---|")
    source = FolderSource(realset.map_folder, realset.map_poses)
    queries = [FolderSource(realset.query_folder, realset.query_poses)]
    for clusters in (8, 16, 32, 64):
        map_dir = build(root / f"k{clusters}", source, clusters, None, 320)
        m = evaluate(
            map_dir, iter(queries), root / f"eval_k{clusters}", THRESHOLD_REAL, progress=False
        )
        dim = MapDatabase.load(map_dir).dim
        print(_row(f"NetVLAD K={clusters}", dim, m))
    m, dim = gem_metrics(realset, queries)
    print(_row("GeM p=3 (same backbone)", dim, m))


def _row(name: str, dim: int, m: dict) -> str:
    return (
        f"| {name} | {dim} | {matched_recall(m):.3f} | {m['pr_auc']:.3f} | "
        f"{m['recall_at_100_precision']:.3f} |"
    )


def gem_metrics(realset, queries) -> tuple[dict, int]:
    model = build_model(ArchConfig("efficientnet_lite0", 8), pretrained=True)
    describer = Describer(model, DescriberConfig(max_side=320))

    def gem(image: np.ndarray) -> np.ndarray:
        x = np.clip(describer.dense_features(image), 1e-6, None)
        v = np.mean(x**3, axis=0) ** (1 / 3)
        return v / np.linalg.norm(v)

    posed = folder_images(realset.map_folder, realset.map_poses)
    database = np.stack([gem(read_rgb(p.path)) for p in posed])
    map_positions = np.stack([p.pose.position for p in posed])
    q = np.stack([gem(f.image) for f in queries])
    similarity = q @ database.T
    order = np.argsort(-similarity, axis=1)
    scores = np.take_along_axis(similarity, order, axis=1)
    positions = map_positions[order]
    query_positions = np.stack([f.position for f in queries])
    metrics, _ = retrieval_metrics(
        positions, scores, query_positions, map_positions, THRESHOLD_REAL
    )
    return metrics, database.shape[1]


def decisions(name: str, map_for, queries_for, threshold: float) -> None:
    print(f"\n## 2. Loop-closure decisions: {name}\n")
    for method in ("sift", "orb"):
        map_dir = map_for(method)
        m = evaluate(
            map_dir,
            queries_for(),
            map_dir.parent / f"eval_{map_dir.name}",
            threshold,
            progress=False,
            localizer=LocalizerConfig(),
        )
        print(
            f"local features: {method} ({FeatureSettings.max_features} per image), min_inliers "
            f"{LocalizerConfig.min_inliers}, top {LocalizerConfig.rerank_top_n} re-ranked\n"
        )
        print(decisions_table(m["decisions"]) + "\n")


def cost(realset, root: Path) -> None:
    print("\n## 3. Cost per 640x480 frame (median of 20), this CPU\n")
    model = build_model(ArchConfig("efficientnet_lite0", 64), pretrained=True)
    describer = Describer(model, DescriberConfig(max_side=640))
    images = [read_rgb(p.path) for p in folder_images(realset.map_folder, realset.map_poses)]
    frames = [np.ascontiguousarray(_to_640x480(im)) for im in images]
    describer.warmup()
    t_desc = _median(lambda i: describer(frames[i % len(frames)]))
    print("| step | ms |\n|---|---|")
    print(f"| global descriptor (Lite0 + NetVLAD K=64, 640x480) | {t_desc:.1f} |")
    for method in ("sift", "orb"):
        verifier = make_verifier(FeatureSettings(method))
        stored = [verifier.extract(f) for f in frames]
        t_query = _median(lambda i: verifier.extract(frames[i % len(frames)]))
        query = verifier.prepare(stored[0])

        def rerank(i: int) -> None:
            for candidate in stored[i % 10 : i % 10 + 10]:
                verifier.evidence(query, verifier.prepare(candidate), LocalizerConfig.min_inliers)

        t_rerank = _median(rerank)
        size = np.mean([f.nbytes for f in stored]) / 1024
        print(f"| {method}: query local features | {t_query:.1f} |")
        print(f"| {method}: re-rank + verify top-10 | {t_rerank:.1f} |")
        print(f"| {method}: **total re-ranking per frame** | **{t_query + t_rerank:.1f}** |")
        print(f"| {method}: storage per map entry | {size:.0f} KiB |")


def _to_640x480(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA)


def _median(function, repeats: int = 20) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        function(i)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    root = args.out or Path(tempfile.mkdtemp(prefix="bench_loop_closure_"))
    realset = assemble()
    print(f"# Loop-closure benchmark ({torch.get_num_threads()} threads)")
    shortlist_study(realset, root / "shortlist")
    real = FolderSource(realset.map_folder, realset.map_poses)
    decisions(
        "real development set (K=64)",
        lambda method: build(root / "real" / method, real, 64, FeatureSettings(method), 320),
        lambda: [FolderSource(realset.query_folder, realset.query_poses)],
        THRESHOLD_REAL,
    )
    first, second = root / "world" / "traversal1", root / "world" / "traversal2"
    places = world.places(20)
    world.write_traversal(first, places, seed=1)
    world.write_traversal(second, places, seed=2, changed=True, start_ns=1_700_000_600_000_000_000)
    demo = BagSource(first, DEMO_TOPIC, PoseLookup(ODOM_TOPIC))
    decisions(
        "demo world, traversal 2 against a map of traversal 1 (K=32)",
        lambda method: build(root / "demo" / method, demo, 32, FeatureSettings(method), 320),
        lambda: [BagSource(second, DEMO_TOPIC, PoseLookup(ODOM_TOPIC))],
        25.0,
    )
    cost(realset, root)


if __name__ == "__main__":
    main()
