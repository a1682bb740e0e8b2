"""slam_eval: the node's recorded loop closures in a gtsam pose graph, scored with evo.

Takes a bag with odometry and ground truth, and a bag with the node's ~/loop_closures recorded
while that drive was replayed through it in loop_closure mode (``replay_eval --loop-closure``
records one; ``ros2 bag record /netvlad_localizer/loop_closures`` does too). Builds odometry
between-factors plus a robust factor per verified loop closure (its relative pose and covariance
where it has geometry, else identity; identity throughout for comparison), optimizes, and compares
odometry-only and optimized trajectories against ground truth (APE/RPE), also with a fraction of
the closures replaced by false ones: metrics.json, report.md, trajectories.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ros2_netvlad.errors import edge
from ros2_netvlad.evaluation.pose_graph import FACTORS, KERNELS, SlamConfig
from ros2_netvlad.evaluation.slam import SlamInputs, slam_eval


@edge("slam_eval")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="slam_eval", description=__doc__)
    p.add_argument("--bag", required=True, type=Path, help="rosbag2 with odometry + ground truth")
    p.add_argument("--closures", required=True, type=Path, help="rosbag2 with ~/loop_closures")
    defaults = SlamInputs(Path(), Path())
    p.add_argument("--odom-topic", default=defaults.odom_topic)
    p.add_argument("--truth-topic", default=defaults.truth_topic)
    p.add_argument("--closures-topic", default=defaults.closures_topic)
    p.add_argument("--kernel", choices=KERNELS, default=SlamConfig.kernel, help="robust kernel")
    p.add_argument("--loop-sigma", type=float, default=SlamConfig.loop_sigma_xy, help="metres (4)")
    p.add_argument(
        "--factors",
        choices=FACTORS,
        default=SlamConfig.factors,
        help="loop factors: the closures' relative poses (identity without geometry), or "
        "identity for all (relative)",
    )
    p.add_argument(
        "--true-radius",
        type=float,
        default=5.0,
        help="metres: a closure further apart in ground truth is counted false (5)",
    )
    p.add_argument(
        "--false-closures",
        type=float,
        default=0.05,
        help="fraction replaced by false ones in the robustness run (0.05)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if not 0.0 <= args.false_closures <= 0.5:
        p.error("--false-closures must be in [0, 0.5]")
    inputs = SlamInputs(
        args.bag, args.closures, args.odom_topic, args.truth_topic, args.closures_topic
    )
    config = SlamConfig(loop_sigma_xy=args.loop_sigma, kernel=args.kernel, factors=args.factors)
    slam_eval(inputs, args.out, config, args.false_closures, args.seed, args.true_radius)
    print((args.out / "report.md").read_text().split("![")[0].strip())
    print(f"report: {args.out / 'report.md'}")
    (args.out / "command.json").write_text(json.dumps(vars(args), default=str, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
