"""Verified loop closures per group on the real sets: the development set (evaluation/realset.py)
and ../shared/realset-hard by difficulty (evaluation/realset_hard.py), at the current defaults.

    python benchmarks/hard_set.py

EfficientNet-Lite0 (ImageNet) with NetVLAD K = 16 fitted on each map, SIFT verification at
localizer defaults; `evaluate` on the query folders, one group each; prints the per-group table
(recall at 100 % precision of the verified decision, false closures). About 3 minutes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ros2_netvlad.config import ArchConfig, DescriberConfig, LocalizerConfig
from ros2_netvlad.evaluation.offline import evaluate
from ros2_netvlad.evaluation.realset import assemble
from ros2_netvlad.evaluation.realset_hard import assemble_hard
from ros2_netvlad.maps.building import BuildOptions, build_map
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.sources.source import FolderSource

HARD = Path(__file__).resolve().parents[1].parent / "shared" / "realset-hard"
LEVERS = {  # the same map, matched two ways
    "sift": LocalizerConfig(),
    "rootsift": LocalizerConfig(root_sift=True),
}


def map_of(folder: Path, out: Path) -> Path:
    model = build_model(ArchConfig("efficientnet_lite0", 16), pretrained=True)
    options = BuildOptions(model=DescriberConfig(device="cpu"), fit_clusters=True, progress=False)
    build_map(out, [FolderSource(folder, folder / "poses.csv")], model, options)
    return out


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="hard_set_"))
    dev = assemble()
    hard = assemble_hard(HARD, root / "realset-hard")
    runs = {
        "development set": (dev.map_folder, {"realset": dev.query_folder}),
        "realset-hard": (hard.map_folder, hard.query_folders),
    }
    print(
        f"{'set':<17}{'matching':<10}{'group':<10}{'queries':>8}{'w/ match':>9}"
        f"{'accepted':>9}{'false':>6}{'recall':>8}{'R@100%P':>9}"
    )
    for name, (map_folder, queries) in runs.items():
        slug = name.replace(" ", "_")
        database = map_of(map_folder, root / f"map_{slug}")
        sources = [FolderSource(folder, folder / "poses.csv") for folder in queries.values()]
        for matching, localizer in LEVERS.items():
            out = root / f"eval_{slug}_{matching}"
            metrics = evaluate(database, sources, out, progress=False, localizer=localizer)
            for group, g in metrics["groups"].items():
                print(
                    f"{name:<17}{matching:<10}{group:<10}{g['queries']:>8}"
                    f"{g['with_true_match']:>9}{g['accepted']:>9}{g['false']:>6}"
                    f"{g['recall']:>8.3f}{g['recall_at_100_precision']:>9.3f}"
                )
    print(f"(queries.csv and report.md under {root})")


if __name__ == "__main__":
    main()
