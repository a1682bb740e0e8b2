"""The demo: a world of real photographs → map from traversal 1 → traversal 2 replayed through the
live node → Recall@N, precision-recall, latency, plots. A randomly initialized network on the same
world is scored offline beside it, as the baseline a real model must beat.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ros2_netvlad.config import ArchConfig, DescriberConfig, KeyframeConfig
from ros2_netvlad.demo import world
from ros2_netvlad.demo.loop_drive import write_loop_drive
from ros2_netvlad.demo.odometry import TRUTH_TOPIC, OdometryDrift
from ros2_netvlad.evaluation.offline import evaluate
from ros2_netvlad.evaluation.slam import SlamInputs, slam_eval
from ros2_netvlad.maps.building import BuildOptions, build_map
from ros2_netvlad.maps.storage import MODEL
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.sources.rosbag import PoseLookup
from ros2_netvlad.sources.source import BagSource

log = logging.getLogger(__name__)
IMAGE_TOPIC, ODOM_TOPIC = "/camera/image_raw/compressed", "/odom"


@dataclass(frozen=True)
class DemoConfig:
    places: int = 20
    seed: int = 0
    num_clusters: int = 32
    max_side: int = 320  # given to build_map only: the map records it, every reader follows it
    rate: float = 2.0  # replay speed factor
    # loop_closure mode: seconds of recent frames a loop closure may not link to (a place's three
    # views span 1 s; a lap of the smallest test world takes 9 s)
    exclusion_window: float = 5.0
    threshold: float = 25.0
    depth: bool = True  # the loop drive as an RGB-D camera sees it (False: monocular)


def generate_world(root: Path, config: DemoConfig) -> tuple[Path, Path]:
    """Two drives along the route: the map traversal, and a revisit under changed conditions."""
    places = world.places(config.places)
    first, second = root / "traversal1", root / "traversal2"
    if not first.exists():
        world.write_traversal(first, places, seed=config.seed + 1)
    if not second.exists():
        world.write_traversal(
            second,
            places,
            seed=config.seed + 2,
            changed=True,
            start_ns=1_700_000_600_000_000_000,
            drift=OdometryDrift(),  # the revisit's wheel odometry, scored on its ground truth
        )
    return first, second


def map_of_bag(
    out: Path,
    bag: Path,
    *,
    image_topic: str = IMAGE_TOPIC,
    pose_topic: str = ODOM_TOPIC,
    backbone: str = "efficientnet_lite0",
    num_clusters: int = 8,
    max_side: int = 320,
    min_distance: float = 0.0,
    pretrained: bool = True,
    store_images: bool = False,
    device: str = "cpu",
) -> Path:
    """A map of one demo-world bag: a backbone with its offline weights (or random ones) and
    NetVLAD fitted on the bag's own frames. The demo, the tests and the benchmarks build theirs
    so."""
    model = build_model(ArchConfig(backbone, num_clusters), pretrained=pretrained)
    options = BuildOptions(
        model=DescriberConfig(device=device, max_side=max_side),
        keyframes=KeyframeConfig(min_distance=min_distance),
        fit_clusters=True,
        store_images=store_images,
        progress=False,
    )
    build_map(out, [BagSource(bag, image_topic, PoseLookup(pose_topic))], model, options)
    return out


def build(root: Path, bag: Path, config: DemoConfig, pretrained: bool) -> Path:
    out = root / ("map" if pretrained else "map_random_backbone")
    if not out.exists():
        torch.manual_seed(config.seed)  # the random baseline is the same on every run
        map_of_bag(
            out,
            bag,
            num_clusters=config.num_clusters,
            max_side=config.max_side,
            pretrained=pretrained,
            store_images=True,
            device="auto",
        )
    return out


# (map directory, query bag, output folder, config) → the live node's metrics: given by the ROS
# layer (tools/demo.py runs replay_eval), so this core module never starts ROS itself
LiveReplay = Callable[[Path, Path, Path, DemoConfig], dict]
# (drive bag, weights, output folder, config) → the bag of ~/loop_closures the node published in
# loop_closure mode while the drive was replayed (given by the ROS layer as well)
LoopClosureReplay = Callable[[Path, Path, Path, DemoConfig], Path]


def run_demo(
    out: str | Path,
    replay: LiveReplay,
    config: DemoConfig = DemoConfig(),
    loop_closure_replay: LoopClosureReplay | None = None,
) -> dict:
    out = Path(out)
    start = time.perf_counter()
    log.info("generating the world (%d places, 2 traversals)", config.places)
    first, second = generate_world(out / "world", config)
    log.info("building the map from traversal 1")
    map_dir = build(out, first, config, pretrained=True)
    log.info("replaying traversal 2 through the live node")
    live = replay(map_dir, second, out / "replay_eval", config)
    log.info("baseline: the same pipeline with a randomly initialized backbone (offline)")
    random_map = build(out, first, config, pretrained=False)
    baseline = evaluate(
        random_map,
        [BagSource(second, IMAGE_TOPIC, PoseLookup(TRUTH_TOPIC))],
        out / "baseline_random",
        config.threshold,  # the map carries its resize rule (max_side), the evaluation reads it
        progress=False,
    )
    slam = None
    if loop_closure_replay is not None:
        slam = _pose_graph(out, map_dir / MODEL, loop_closure_replay, config)
    summary = {
        "live": live,
        "random_backbone": baseline,
        "slam": slam,
        "seconds": round(time.perf_counter() - start, 1),
        "report": str(out / "replay_eval" / "report.md"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _pose_graph(out: Path, weights: Path, replay: LoopClosureReplay, config: DemoConfig) -> dict:
    """The loop twice with drifting odometry, through the node in loop_closure mode, then its
    loop closures in a gtsam pose graph (slam_eval)."""
    drive = out / "world" / "loop_drive"
    if not drive.exists():
        log.info("driving the loop twice with drifting wheel odometry")
        write_loop_drive(drive, seed=config.seed + 3)
    log.info("replaying the drive through the live node in loop_closure mode")
    closures = replay(drive, weights, out / "loop_closure_replay", config)
    log.info("pose graph with the recorded loop closures (gtsam), scored with evo")
    return slam_eval(SlamInputs(drive, closures), out / "slam")


def summary_text(summary: dict) -> str:
    live, base = summary["live"], summary["random_backbone"]
    rows = [
        ("EfficientNet-Lite0 + NetVLAD, live node", live),
        ("random backbone + NetVLAD, offline", base),
    ]
    lines = [
        f"{'model':<42}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'PR-AUC':>8}",
        *[
            f"{name:<42}{m['recall@1']:>7.2f}{m['recall@5']:>7.2f}{m['recall@10']:>7.2f}{m['pr_auc']:>8.2f}"
            for name, m in rows
        ],
        f"live node: {live['processed_frames']}/{live['published_frames']} frames, latency p50 "
        f"{live['latency_p50_ms']:.0f} ms / p95 {live['latency_p95_ms']:.0f} ms, pose prior error "
        f"p50 "
        f"{live.get('pose_prior_error_m_p50', float('nan')):.1f} m",
        *_decision_lines(live),
        *_slam_lines(summary.get("slam")),
        f"done in {summary['seconds']:.0f} s; report: {summary['report']}",
    ]
    return "\n".join(lines)


def _decision_lines(live: dict) -> list[str]:
    decisions = live.get("decisions")
    if not decisions:
        return []
    lines = [
        f"{'loop-closure decision':<24}{'precision':>10}{'recall':>8}{'R@100%P':>9}{'false':>7}"
    ]
    for name, d in decisions.items():
        lines.append(
            f"{name:<24}{d['precision']:>10.2f}{d['recall']:>8.2f}"
            f"{d['recall_at_100_precision']:>9.2f}{d['false_loop_closures']:>7d}"
        )
    return lines


def _slam_lines(slam: dict | None) -> list[str]:
    if not slam:
        return []
    false_run = next(k for k in slam if k.startswith("with_") and k.endswith("false_closures"))
    return [
        f"pose graph ({slam['loop_closures']} verified loop closures, "
        f"{slam['false_among_node_closures']} false): ATE RMSE odometry only "
        f"{slam['odometry_only']['ate_rmse_m']:.1f} m -> with loop closures "
        f"{slam['with_loop_closures']['ate_rmse_m']:.1f} m "
        f"(x{slam['ate_ratio_to_odometry']:.2f}); {false_run.removeprefix('with_')} injected: "
        f"{slam[false_run]['ate_rmse_m']:.1f} m (x{slam['ate_ratio_false_to_clean']:.2f} of clean)",
        f"loop factors: identity {slam['identity_factors']['ate_rmse_m']:.2f} m -> relative pose "
        f"{slam['with_loop_closures']['ate_rmse_m']:.2f} m ATE "
        f"(x{slam['ate_ratio_to_identity']:.2f}; closures by geometry "
        f"{slam['closures_by_geometry']})",
    ]
