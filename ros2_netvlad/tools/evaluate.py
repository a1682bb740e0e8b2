"""evaluate: Recall@N, precision-recall and plots for a query set against a map (no ROS needed)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.errors import edge
from ros2_netvlad.evaluation.decisions import decisions_table
from ros2_netvlad.evaluation.offline import evaluate
from ros2_netvlad.evaluation.report import summary_table
from ros2_netvlad.maps.storage import map_geo_origin
from ros2_netvlad.tools.options import (
    SOURCE_HELP,
    add_describer,
    add_pose_source,
    model_config,
    pose_lookup,
    sources_from,
)
from ros2_netvlad.verification.registry import verifier_names


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
    p.add_argument("--source", action="append", default=[], help=f"query set: {SOURCE_HELP}")
    p.add_argument("--threshold", type=float, default=25.0, help="metres for a correct match (25)")
    p.add_argument("--out", required=True, type=Path)
    add_describer(p)
    p.add_argument("--force", action="store_true", help="allow a resize rule other than the map's")
    defaults = LocalizerConfig()
    p.add_argument(
        "--verification",
        choices=("auto", "none", *verifier_names()),
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
    given = [x for x in (args.bag, args.images, args.mat) if x is not None] + args.source
    if not given or (len(given) > 1 and not args.source):
        p.error("give exactly one query set: --bag, --images or --mat (or --source PATH ...)")
    if args.mat and not args.image_root:
        p.error("--mat needs --image-root")
    if args.bag:
        pose_lookup(args, p)  # says which pose option is missing
    # GNSS fixes as metres around the map's origin, not the queries' own first fix
    queries = sources_from(given, args, p, map_geo_origin(args.map), queries=True)
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
