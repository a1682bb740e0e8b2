"""Verified loop closures per group on the real sets, before and after issue 20's per-frame
defaults: the development set (evaluation/realset.py) and ../shared/realset-hard by difficulty
(evaluation/realset_hard.py).

    python benchmarks/hard_set.py

EfficientNet-Lite0 (ImageNet) with NetVLAD K = 16 fitted on each map; `evaluate` on the query
folders, one group each (frames one at a time: no odometry, so no tracking). Two ways:

- before: SIFT 768 features on a 480 px longest side, matched as SIFT, a fixed 30 inliers;
- after (the defaults): 1024 features on 640 px, RootSIFT, the gate learned from the map's own
  look-alikes (their 0.99 quantile + 6, never below 20).

Then the look-alike check of "no true match": every query against the map with its true entries
removed, at the map's learned gate and with its aliased entries needing the odometry (what a robot
meets exploring somewhere new), on both sets and the demo world. Prints the per-group tables
(recall at 100 % precision, false closures) and the largest wrong inlier count. About 4 minutes.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from ros2_netvlad.config import ArchConfig, DescriberConfig, LocalizerConfig
from ros2_netvlad.demo.odometry import TRUTH_TOPIC
from ros2_netvlad.demo.run import IMAGE_TOPIC, DemoConfig, build, generate_world
from ros2_netvlad.evaluation.offline import evaluate
from ros2_netvlad.evaluation.realset import assemble
from ros2_netvlad.evaluation.realset_hard import assemble_hard
from ros2_netvlad.localization.localizer import Localizer
from ros2_netvlad.maps.building import BuildOptions, build_map
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.sources.rosbag import PoseLookup
from ros2_netvlad.sources.source import BagSource, FolderSource, every_frame
from ros2_netvlad.verification.features import FeatureSettings

HARD = Path(__file__).resolve().parents[1].parent / "shared" / "realset-hard"
WAYS = {  # features stored in the map, and how the localizer matches and gates them
    "before": (
        FeatureSettings("sift", 768, 480),
        LocalizerConfig(root_sift=False, min_inliers=30, lookalike_quantile=0.0),
    ),
    "after": (FeatureSettings(), LocalizerConfig()),
}


def map_of(folder: Path, out: Path, features: FeatureSettings) -> Path:
    model = build_model(ArchConfig("efficientnet_lite0", 16), pretrained=True)
    options = BuildOptions(
        model=DescriberConfig(device="cpu"),
        fit_clusters=True,
        progress=False,
        local_features=features,
    )
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
        f"{'set':<17}{'way':<8}{'group':<10}{'queries':>8}{'w/ match':>9}"
        f"{'accepted':>9}{'false':>6}{'recall':>8}{'R@100%P':>9}  gate"
    )
    for name, (map_folder, queries) in runs.items():
        slug = name.replace(" ", "_")
        sources = [FolderSource(folder, folder / "poses.csv") for folder in queries.values()]
        for way, (features, localizer) in WAYS.items():
            database = map_of(map_folder, root / f"map_{slug}_{way}", features)
            metrics = evaluate(
                database, sources, root / f"eval_{slug}_{way}", progress=False, localizer=localizer
            )
            gate = Localizer(MapDatabase.load(root / f"map_{slug}_{way}"), localizer).min_inliers
            for group, g in metrics["groups"].items():
                print(
                    f"{name:<17}{way:<8}{group:<10}{g['queries']:>8}"
                    f"{g['with_true_match']:>9}{g['accepted']:>9}{g['false']:>6}"
                    f"{g['recall']:>8.3f}{g['recall_at_100_precision']:>9.3f}  {gate}"
                )
        removed_true_entries(name, root / f"map_{slug}_after", sources, root / f"removed_{slug}")
    demo_world(root / "demo")
    print(f"(queries.csv and report.md under {root})")


def removed_true_entries(name: str, map_dir: Path, sources: list, out: Path) -> None:
    """Each query as if the map had no entry at its place: its shortlist verified 20 deep
    (covering the top 10 once the true entries are gone), and any entry more than 25 m from it
    reaching the map's learned gate would be a false closure, unless the entry is aliased (its
    look-alike at another place reached the floor: the odometry must confirm it). Exact: a
    candidate that skips the geometry has fewer mutual matches than the gate.

    Two ways of knowing the aliasing: from the whole map (the look-alike place is mapped too),
    and without the look-alike pairs that involve the query's own place (that place was never
    mapped: an appearance test cannot know that two places share a scene it has seen once)."""
    database = MapDatabase.load(map_dir)
    localizer = Localizer(database)
    gate, floor, aliased = localizer.min_inliers, localizer.config.min_inliers, localizer.aliased
    lookalikes = database.manifest.lookalikes
    config = replace(LocalizerConfig(), rerank_top_n=20, sequence_track_distance=0.0)
    evaluate(map_dir, sources, out, progress=False, localizer=config)
    truth = [frame.pose.position[:2] for frame in every_frame(sources)]  # the CSV's order
    positions = database.positions()[:, :2]
    wrong, known, never_mapped = [], 0, 0
    with open(out / "queries.csv") as f:
        for row, here in zip(csv.DictReader(f), truth):
            ids = [int(i) for i in row["top_ids"].split(";") if i]
            inliers = [int(n) for n in row["top_inliers"].split(";") if n]
            distance = np.linalg.norm(positions - here, axis=1)
            far = [(i, n) for i, n in zip(ids, inliers) if distance[i] > 25]
            wrong.append(max((n for _, n in far), default=0))
            near = set(np.flatnonzero(distance <= 25).tolist())
            still_aliased = {
                i
                for pair, n in zip(lookalikes.entries, lookalikes.inliers)
                if n >= floor and not near.intersection(pair)
                for i in pair
            }
            known += any(n >= gate and i not in aliased for i, n in far)
            never_mapped += any(n >= gate and i not in still_aliased for i, n in far)
    print(
        f"{name}: true entries removed, {len(wrong)} queries, learned gate {gate}, "
        f"{len(aliased)} entries aliased; largest wrong inliers {max(wrong)}; "
        f"accepted: {known} (aliasing known from the whole map), {never_mapped} (the query's "
        f"place never mapped)"
    )


def demo_world(root: Path) -> None:
    """The same check on the demo world (20 places, its revisit drive, ground truth)."""
    config = DemoConfig()
    first, second = generate_world(root / "world", config)
    map_dir = build(root, first, config, pretrained=True)
    queries = [BagSource(second, IMAGE_TOPIC, PoseLookup(TRUTH_TOPIC))]
    removed_true_entries("demo world", map_dir, queries, root / "removed_demo")


if __name__ == "__main__":
    main()
