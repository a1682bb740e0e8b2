"""Recall@1 of the shortlist on the real sets: NetVLAD alone, with a GeM head concatenated
(weights 0.5 and 1), multi-scale describing, and both.

    python benchmarks/shortlist.py [K]

EfficientNet-Lite0 (ImageNet) with NetVLAD K (64) fitted on each map, over three k-means seeds;
the development set (evaluation/realset.py; its 7 queries without a true match count as misses,
so 0.863 is its ceiling) and ../shared/realset-hard (evaluation/realset_hard.py). The descriptor
alone (no verification). Prints the mean and each seed's R@1. About 25 minutes on 2 cores.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from ros2_netvlad.config import ARCH_ADDED, ArchConfig, DescriberConfig, LocalizerConfig
from ros2_netvlad.evaluation.offline import evaluate
from ros2_netvlad.evaluation.realset import assemble
from ros2_netvlad.evaluation.realset_hard import assemble_hard
from ros2_netvlad.maps.building import BuildOptions, build_map
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.sources.source import FolderSource

HARD = Path(__file__).resolve().parents[1].parent / "shared" / "realset-hard"
VARIANTS = {
    "NetVLAD": ARCH_ADDED,
    "+ GeM, weight 0.5": {"gem_weight": 0.5, "multiscale": False},
    "+ GeM, weight 1 (the default)": {"gem_weight": 1.0, "multiscale": False},
    "multi-scale": {"gem_weight": 0.0, "multiscale": True},
    "+ GeM 1, multi-scale": {"gem_weight": 1.0, "multiscale": True},
}
SEEDS = (0, 1, 2)


def recall_at_1(root: Path, arch: dict, clusters: int, seed: int, map_folder, queries) -> float:
    model = build_model(ArchConfig("efficientnet_lite0", clusters, **arch), pretrained=True)
    options = BuildOptions(
        model=DescriberConfig(device="cpu"),
        fit_clusters=True,
        progress=False,
        local_features=None,
        kmeans_seed=seed,
    )
    build_map(root / "map", [FolderSource(map_folder, map_folder / "poses.csv")], model, options)
    sources = [FolderSource(q, q / "poses.csv") for q in queries]
    metrics = evaluate(
        root / "map",
        sources,
        root / "eval",
        progress=False,
        localizer=LocalizerConfig(verification="none"),
    )
    return float(metrics["recall@1"])


def main() -> None:
    clusters = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    root = Path(tempfile.mkdtemp(prefix="shortlist_"))
    dev = assemble()
    hard = assemble_hard(HARD, root / "realset-hard")
    sets = {
        "development set": (dev.map_folder, [dev.query_folder]),
        "realset-hard": (hard.map_folder, list(hard.query_folders.values())),
    }
    print(f"NetVLAD K = {clusters}, R@1 mean over seeds {SEEDS} (each seed)")
    for v, (name, arch) in enumerate(VARIANTS.items()):
        cells = []
        for s, (set_name, (map_folder, queries)) in enumerate(sets.items()):
            values = []
            for seed in SEEDS:
                where = root / f"{v}_{s}_{seed}"
                values.append(recall_at_1(where, arch, clusters, seed, map_folder, queries))
            each = " ".join(f"{v:.3f}" for v in values)
            cells.append(f"{set_name} {np.mean(values):.3f} ({each})")
        print(f"{name:<32}" + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main()
