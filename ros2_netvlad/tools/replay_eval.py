"""replay_eval: a bag replayed through the live node (its own process and ROS domain).

Localize mode (default): the query bag against a prebuilt --map; the recorded loop closures and
pose priors are scored against the bag's ground truth (raw, re-ranked and verified decisions side
by side). Loop-closure mode (--loop-closure): the node grows a new map from the bag's odometry
and answers every frame; its ~/loop_closures are recorded into OUT/loop_closures and, when the bag
has ground truth, put into a pose graph by slam_eval (OUT/slam)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from ros2_netvlad.errors import InputError, edge
from ros2_netvlad.evaluation.report import summary_table
from ros2_netvlad.evaluation.slam import SlamInputs, slam_eval
from ros2_netvlad.maps.opening import map_weights
from ros2_netvlad.maps.storage import map_geo_origin
from ros2_netvlad.model.checkpoints import WeightsError
from ros2_netvlad.ros.loop_closure_replay import replay_loop_closure
from ros2_netvlad.ros.replay_eval import replay_evaluate
from ros2_netvlad.sources.rosbag import open_bag
from ros2_netvlad.tools.options import add_describer, add_pose_source, pose_lookup


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="replay_eval", description=__doc__)
    p.add_argument("--map", type=Path, help="prebuilt map (localize mode)")
    p.add_argument("--bag", required=True, type=Path, help="rosbag2 with images and ground truth")
    add_pose_source(p)
    p.add_argument("--rate", type=float, default=1.0, help="replay speed factor")
    p.add_argument("--threshold", type=float, default=25.0)
    p.add_argument(
        "--params", type=Path, help="extra node params file (after config/localize.yaml)"
    )
    p.add_argument(
        "--odom-topic",
        default="/odom",
        help="odometry the node tracks revisits with (played when the bag has it) and, in "
        "loop-closure mode, places frames by",
    )
    add_describer(p)
    p.add_argument("--out", required=True, type=Path)
    online = p.add_argument_group("loop-closure mode")
    online.add_argument("--loop-closure", action="store_true", help="grow a map online instead")
    online.add_argument("--weights", type=Path, help="model for the new map (a checkpoint)")
    online.add_argument("--truth-topic", default="/ground_truth", help="for slam_eval")
    online.add_argument(
        "--exclusion-window", type=float, default=10.0, help="seconds (localizer.exclusion_window)"
    )
    online.add_argument(
        "--depth-topic",
        default="",
        help="aligned depth image replayed to the node's depth (metric closures); CameraInfo on "
        "the image topic's sibling is replayed when the bag has it",
    )
    online.add_argument(
        "--camera-to-base",
        default="",
        help="'x y z qx qy qz qw' of the camera's optical frame on the robot (node.camera_to_base)",
    )
    return p


@edge("replay_eval")
def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    # A ROS domain of our own, so the evaluation neither hears nor disturbs a running robot.
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="replay_eval_log_"))
    if args.loop_closure:
        _loop_closure(args, p)
    else:
        _localize(args, p)
    print(f"report: {args.out / ('slam' if args.loop_closure else '') / 'report.md'}")
    (args.out / "command.json").write_text(json.dumps(vars(args), default=str, indent=2))
    return 0


def _localize(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    if not args.map:
        p.error("give --map (or --loop-closure --weights)")
    poses = pose_lookup(args, p, origin=map_geo_origin(args.map))  # fixes around the map's origin
    metrics = replay_evaluate(
        args.map,
        args.bag,
        args.image_topic,
        poses,
        args.out,
        args.rate,
        args.threshold,
        args.params,
        args.device,
        args.max_side,
        backend=args.backend,
        backend_model=args.backend_model,
        odom_topic=args.odom_topic,
    )
    print(summary_table(metrics))
    print(
        f"processed {metrics['processed_frames']}/{metrics['published_frames']} frames, latency "
        f"p50 {metrics['latency_p50_ms']:.0f} ms / p95 {metrics['latency_p95_ms']:.0f} ms"
    )


def _loop_closure(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    try:
        weights = map_weights(args.map, args.weights or "")
    except WeightsError:
        p.error("--loop-closure needs --weights CHECKPOINT (or --map with a model.pt)")
    if not args.image_topic:
        p.error("--loop-closure needs --image-topic")
    closures = replay_loop_closure(
        args.bag,
        Path(weights),
        args.out,
        args.image_topic,
        args.odom_topic,
        args.exclusion_window,
        args.rate,
        args.params,
        args.device,
        depth_topic=args.depth_topic,
        camera_to_base=args.camera_to_base,
    )
    print(f"loop closures recorded: {closures}")
    if not _has_topic(args.bag, args.truth_topic):
        print(f"{args.bag} has no {args.truth_topic}: no pose-graph evaluation")
        return
    inputs = SlamInputs(args.bag, closures, args.odom_topic, args.truth_topic)
    slam_eval(inputs, args.out / "slam")
    print((args.out / "slam" / "report.md").read_text().split("![")[0].strip())


def _has_topic(bag: Path, topic: str) -> bool:
    try:
        with open_bag(bag) as reader:
            return any(c.topic == topic for c in reader.connections)
    except InputError:
        return False


if __name__ == "__main__":
    sys.exit(main())
