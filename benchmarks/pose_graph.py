"""The loop drive of the 3-D world through the live node (loop_closure mode), RGB-D and
monocular, its closures in the gtsam pose graph: ATE with relative-pose factors against identity
factors, and with 5 % of the closures moved to wrong frames.

    python benchmarks/pose_graph.py [--out /tmp/pose_graph] [--seed 3]

Each drive: two laps of the block (the second a metre over, under other light) with drifting
skid-steer odometry, CameraInfo beside every image, and for RGB-D an aligned 16UC1 depth image.
The model is EfficientNet-Lite0 with NetVLAD fitted on the drive's frames (map_of_bag). About
two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from ros2_netvlad.demo.loop_drive import write_loop_drive
from ros2_netvlad.demo.run import DemoConfig, map_of_bag
from ros2_netvlad.evaluation.slam import SlamInputs, slam_eval
from ros2_netvlad.tools.demo import loop_closures_through_node


def drive(out: Path, depth: bool, seed: int) -> dict:
    bag = out / "drive"
    write_loop_drive(bag, seed=seed, depth="16UC1" if depth else "")
    model = map_of_bag(out / "model_map", bag, num_clusters=8) / "model.pt"
    closures = loop_closures_through_node(bag, model, out / "replay", DemoConfig(depth=depth))
    return slam_eval(SlamInputs(bag, closures), out / "slam")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="pose_graph_")))
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    print(
        f"{'drive':<10}{'closures':>9}{'metric':>8}{'mono':>6}{'false':>6}{'odometry':>10}"
        f"{'identity':>10}{'relative':>10}{'rel/id':>8}{'5% false':>10}{'/clean':>8}"
    )
    for name, depth in (("RGB-D", True), ("monocular", False)):
        m = drive(args.out / name, depth, args.seed)
        by = m["closures_by_geometry"]
        ate = {k: m[k]["ate_rmse_m"] for k in m if isinstance(m[k], dict) and "ate_rmse_m" in m[k]}
        false_run = next(k for k in ate if k.endswith("false_closures"))
        print(
            f"{name:<10}{m['loop_closures']:>9}{by['2']:>8}{by['1']:>6}"
            f"{m['false_among_node_closures']:>6}{ate['odometry_only']:>9.2f}m"
            f"{ate['identity_factors']:>9.2f}m{ate['with_loop_closures']:>9.2f}m"
            f"{m['ate_ratio_to_identity']:>8.2f}{ate[false_run]:>9.2f}m"
            f"{m['ate_ratio_false_to_clean']:>8.2f}"
        )
    print(f"(reports under {args.out}/*/slam/report.md)")


if __name__ == "__main__":
    main()
