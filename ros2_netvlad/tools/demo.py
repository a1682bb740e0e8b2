"""demo: the README's first command — the whole system on a world made of real photographs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ros2_netvlad.demo.loop_drive import DEPTH_TOPIC
from ros2_netvlad.demo.odometry import TRUTH_TOPIC
from ros2_netvlad.demo.run import IMAGE_TOPIC, ODOM_TOPIC, DemoConfig, run_demo, summary_text
from ros2_netvlad.demo.world3d import MOUNT
from ros2_netvlad.errors import edge
from ros2_netvlad.ros.loop_closure_replay import replay_loop_closure
from ros2_netvlad.ros.replay_eval import replay_evaluate
from ros2_netvlad.sources.rosbag import PoseLookup


def replay_through_node(
    map_dir: Path, bag: Path, out: Path, config: DemoConfig, params: Path | None = None
) -> dict:
    """The live part of the demo: replay_eval, in a ROS domain of its own (``params``: a node
    params file on top of the shipped one)."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    return replay_evaluate(
        map_dir,
        bag,
        IMAGE_TOPIC,
        PoseLookup(TRUTH_TOPIC),  # scored on the ground truth; the node gets the wheel odometry
        out,
        config.rate,
        config.threshold,
        params,
        odom_topic=ODOM_TOPIC,
    )


def loop_closures_through_node(bag: Path, weights: Path, out: Path, config: DemoConfig) -> Path:
    """The SLAM part: the drive through the node in loop_closure mode, ~/loop_closures recorded."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    return replay_loop_closure(
        bag,
        weights,
        out,
        IMAGE_TOPIC,
        ODOM_TOPIC,
        config.exclusion_window,
        config.rate,
        depth_topic=DEPTH_TOPIC if config.depth else "",
        camera_to_base=" ".join(f"{v:g}" for v in MOUNT),
    )


@edge("demo")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__)
    parser.add_argument(
        "--out",
        default="demo_output",
        help="output directory (re-used: the world and maps are kept)",
    )
    parser.add_argument("--places", type=int, default=DemoConfig.places)
    parser.add_argument("--seed", type=int, default=DemoConfig.seed)
    parser.add_argument(
        "--monocular",
        action="store_true",
        help="the loop drive without its depth image: closures carry rotation + direction only",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="demo: %(message)s")
    config = DemoConfig(places=args.places, seed=args.seed, depth=not args.monocular)
    summary = run_demo(args.out, replay_through_node, config, loop_closures_through_node)
    print(summary_text(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
