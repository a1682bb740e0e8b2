"""replay_eval: a query bag replayed through the live node (its own process and ROS domain), the
recorded loop closures and pose priors scored against the bag's ground truth."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from ros2_netvlad.errors import edge
from ros2_netvlad.evaluation.report import summary_table
from ros2_netvlad.maps.storage import map_geo_origin
from ros2_netvlad.ros.replay_eval import replay_evaluate
from ros2_netvlad.tools.options import add_describer, add_pose_source, pose_lookup


@edge("replay_eval")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="replay_eval", description=__doc__)
    p.add_argument("--map", required=True, type=Path)
    p.add_argument(
        "--bag", required=True, type=Path, help="query rosbag2 with images and ground truth"
    )
    add_pose_source(p)
    p.add_argument("--rate", type=float, default=1.0, help="replay speed factor")
    p.add_argument("--threshold", type=float, default=25.0)
    p.add_argument(
        "--params", type=Path, help="extra node params file (after config/localize.yaml)"
    )
    add_describer(p)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    poses = pose_lookup(args, p, origin=map_geo_origin(args.map))  # fixes around the map's origin
    # A ROS domain of our own, so the evaluation neither hears nor disturbs a running robot.
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="replay_eval_log_"))
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
    )
    print(summary_table(metrics))
    print(
        f"processed {metrics['processed_frames']}/{metrics['published_frames']} frames, latency "
        f"p50 {metrics['latency_p50_ms']:.0f} ms / p95 {metrics['latency_p95_ms']:.0f} ms"
    )
    print(f"report: {args.out / 'report.md'}")
    (args.out / "command.json").write_text(json.dumps(vars(args), default=str, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
