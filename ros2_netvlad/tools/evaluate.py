"""evaluate: Recall@N, precision-recall and plots for a query set against a map (no ROS needed)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ros2_netvlad.config import VERIFICATION, LocalizerConfig
from ros2_netvlad.errors import edge
from ros2_netvlad.evaluation.decisions import decisions_table
from ros2_netvlad.evaluation.offline import bag_queries, evaluate, folder_queries
from ros2_netvlad.evaluation.report import summary_table
from ros2_netvlad.maps.storage import map_geo_origin
from ros2_netvlad.sources.folders import folder_images, load_mat, mat_images
from ros2_netvlad.tools.options import add_describer, add_pose_source, model_config, pose_lookup


@edge("evaluate")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="evaluate", description=__doc__)
    p.add_argument(
        "--map", required=True, type=Path, help="map directory (its model.pt describes the queries)"
    )
    p.add_argument("--bag", type=Path, help="query rosbag2")
    add_pose_source(p)
    p.add_argument("--images", type=Path, help="query image folder")
    p.add_argument("--poses", type=Path, help="CSV for --images (else UTM in file names)")
    p.add_argument("--mat", type=Path, help="Pittsburgh/Tokyo dbStruct .mat (its query images)")
    p.add_argument("--image-root", type=Path, help="image root for --mat")
    p.add_argument("--threshold", type=float, default=25.0, help="metres for a correct match (25)")
    p.add_argument("--out", required=True, type=Path)
    add_describer(p)
    p.add_argument("--force", action="store_true", help="allow a resize rule other than the map's")
    defaults = LocalizerConfig()
    p.add_argument(
        "--verification",
        choices=VERIFICATION,
        default=defaults.verification,
        help="local-feature re-ranking and verification (auto: the map's features)",
    )
    p.add_argument(
        "--rerank-top-n", type=int, default=defaults.rerank_top_n, help="shortlist re-ranked"
    )
    p.add_argument(
        "--min-inliers",
        type=int,
        default=defaults.min_inliers,
        help=f"inliers for a verified loop closure ({defaults.min_inliers})",
    )
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if sum(x is not None for x in (args.bag, args.images, args.mat)) != 1:
        p.error("give exactly one query set: --bag, --images or --mat")
    if args.bag:  # GNSS fixes as metres around the map's origin, not the queries' own first fix
        poses = pose_lookup(args, p, origin=map_geo_origin(args.map))
        queries = bag_queries(args.bag, args.image_topic, poses)
    elif args.images:
        queries = folder_queries(folder_images(args.images, args.poses, map_geo_origin(args.map)))
    else:
        if not args.image_root:
            p.error("--mat needs --image-root")
        queries = folder_queries(mat_images(load_mat(args.mat), args.image_root))
    metrics = evaluate(
        args.map,
        queries,
        args.out,
        args.threshold,
        model_config(args),
        progress=not args.no_progress,
        force=args.force,
        localizer=LocalizerConfig(
            verification=args.verification,
            rerank_top_n=args.rerank_top_n,
            min_inliers=args.min_inliers,
        ),
    )
    print(f"described {metrics['describer']}")
    print(summary_table(metrics))
    if "decisions" in metrics:
        print(decisions_table(metrics["decisions"]))
    print(f"report: {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
