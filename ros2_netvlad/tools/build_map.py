"""build_map: a map directory from rosbags (or an image folder) and a model."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from ros2_netvlad.config import (
    BACKENDS,
    ArchConfig,
    DatabaseConfig,
    DescriberConfig,
    KeyframeConfig,
)
from ros2_netvlad.config_files import load_yaml_section
from ros2_netvlad.errors import edge
from ros2_netvlad.maps.building import BuildOptions, build_map
from ros2_netvlad.model.backbones import BACKBONES
from ros2_netvlad.model.distributed import Distributed
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.model.weights import load
from ros2_netvlad.tools.options import (
    SOURCE_HELP,
    add_camera,
    add_pose_source,
    camera_file,
    pose_lookup,
    sources_from,
)
from ros2_netvlad.verification.features import FeatureSettings
from ros2_netvlad.verification.registry import verifier_names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build_map",
        description=__doc__,
        epilog="Runs under torchrun too: each rank describes a shard, rank 0 writes the map.",
    )
    source = p.add_argument_group("source (bags or a folder)")
    source.add_argument(
        "--bag", action="append", default=[], help="rosbag2 directory (sqlite3 or mcap); repeatable"
    )
    add_pose_source(source)
    add_camera(source)
    source.add_argument("--images", type=Path, help="image folder instead of bags")
    source.add_argument("--poses", type=Path, help="CSV for --images (else UTM in file names)")
    source.add_argument("--source", action="append", default=[], help=SOURCE_HELP)
    source.add_argument("--image-root", type=Path, help="image folder of a .mat --source")
    model = p.add_argument_group("model (one of)")
    model.add_argument("--weights", help="checkpoint or public NetVLAD weight file")
    model.add_argument(
        "--backbone",
        choices=tuple(BACKBONES),
        help="pretrained backbone + NetVLAD fitted on this map",
    )
    model.add_argument("--num-clusters", type=int, default=64, help="K for --backbone (64)")
    model.add_argument(
        "--gem-weight",
        type=float,
        default=ArchConfig.gem_weight,
        help="for --backbone: concatenate a GeM of the feature map with this weight (0 = off)",
    )
    model.add_argument(
        "--multiscale",
        action="store_true",
        help="for --backbone: describe at scales 1, 0.75, 0.5 and sum (about 1.8x the cost)",
    )
    model.add_argument(
        "--output-dim", type=int, default=0, help="truncate whitened descriptors to N dims"
    )
    model.add_argument(
        "--trust-weights", action="store_true", help="allow full unpickling of --weights"
    )
    p.add_argument("--out", required=True, type=Path, help="map directory to write")
    p.add_argument("--config", type=Path, help="YAML with model / database / keyframes sections")
    p.add_argument("--device", help="override model.device (auto, cpu, cuda)")
    p.add_argument("--backend", choices=BACKENDS, help="override model.backend (torch)")
    p.add_argument("--backend-model", help="override model.backend_model (export_model output)")
    p.add_argument("--index", help="faiss index: Flat (default), IVF<n>,PQ<m>, HNSW<M>")
    p.add_argument("--fp16", action="store_true", help="store vectors as fp16")
    p.add_argument("--min-distance", type=float, help="keyframe: metres moved")
    p.add_argument("--min-angle", type=float, help="keyframe: degrees turned")
    p.add_argument("--max-interval", type=float, help="keyframe: seconds passed (0 = never)")
    p.add_argument(
        "--store-images", action="store_true", help="keep JPEG keyframes (evaluation reports)"
    )
    p.add_argument(
        "--local-features",
        choices=(*verifier_names(), "none"),
        default="sift",
        help="local features stored per entry for re-ranking and verification (sift)",
    )
    p.add_argument(
        "--local-max-features",
        type=int,
        default=FeatureSettings.max_features,
        help=f"features per image ({FeatureSettings.max_features})",
    )
    p.add_argument(
        "--local-max-side",
        type=int,
        default=FeatureSettings.max_side,
        help="shrink larger frames to this longest side before finding local features "
        f"({FeatureSettings.max_side}; with --local-max-features the feature budget)",
    )
    p.add_argument(
        "--local-min-side",
        type=int,
        default=0,
        help="enlarge smaller frames to this short side before finding local features (0 = off)",
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def options_from(args: argparse.Namespace) -> BuildOptions:
    def section(name, cls, overrides):
        base = load_yaml_section(args.config, name, cls) if args.config else cls()
        return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})

    return BuildOptions(
        model=section(
            "model",
            DescriberConfig,
            {"device": args.device, "backend": args.backend, "backend_model": args.backend_model},
        ),
        database=section(
            "database", DatabaseConfig, {"index": args.index, "fp16": args.fp16 or None}
        ),
        keyframes=section(
            "keyframes",
            KeyframeConfig,
            {
                "min_distance": args.min_distance,
                "min_angle": args.min_angle,
                "max_interval": args.max_interval,
            },
        ),
        fit_clusters=args.backbone is not None,
        store_images=args.store_images,
        local_features=None
        if args.local_features == "none"
        else FeatureSettings(
            args.local_features,
            args.local_max_features,
            args.local_max_side,
            min_side=args.local_min_side,
        ),
        camera=camera_file(args),
        progress=not args.no_progress,
    )


def map_sources(args: argparse.Namespace, p: argparse.ArgumentParser) -> list:
    if args.images and args.bag:
        p.error("give --bag or --images, not both")
    paths = [*args.bag, *([args.images] if args.images else []), *args.source]
    if not paths:
        p.error("give --bag (with --image-topic), --images DIR or --source PATH")
    if args.bag and not (args.pose_topic or args.tf_frames):
        pose_lookup(args, p)  # says which pose option is missing
    return sources_from(paths, args, p)


@edge("build_map")
def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if bool(args.weights) == bool(args.backbone):
        p.error("give exactly one of --weights and --backbone")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sources, options = map_sources(args, p), options_from(args)
    model = (
        load(args.weights, trusted=args.trust_weights)
        if args.weights
        else build_model(_arch(args), pretrained=True)
    )
    if args.output_dim:
        model.truncate(args.output_dim)
    report = build_map(args.out, sources, model, options, Distributed.from_environment())
    if report.path is not None:
        print(report.summary())
    return 0


def _arch(args: argparse.Namespace) -> ArchConfig:
    return ArchConfig(
        args.backbone,
        args.num_clusters,
        gem_weight=args.gem_weight,
        multiscale=args.multiscale,
    )


if __name__ == "__main__":
    sys.exit(main())
