"""train: NetVLAD triplet training on rosbags, image folders or a Pittsburgh/Tokyo .mat.

Writes into --out: last.pt (resumable), best.pt (best validation Recall@5), metrics.csv,
metrics.json and training.png. The trained checkpoints have no whitening: run fit_pca on best.pt.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from ros2_netvlad.config import ArchConfig, KeyframeConfig
from ros2_netvlad.config_files import load_yaml_section
from ros2_netvlad.errors import edge
from ros2_netvlad.model.backbones import BACKBONES
from ros2_netvlad.model.distributed import Distributed
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.model.weights import load
from ros2_netvlad.tools.options import add_pose_source, sources_from
from ros2_netvlad.training.config import TrainConfig
from ros2_netvlad.training.placesets import Split, from_mat, from_sources
from ros2_netvlad.training.runs import check_resumable, read_training_checkpoint
from ros2_netvlad.training.trainer import Trainer

log = logging.getLogger("train")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Runs under torchrun for several GPUs or nodes (NCCL; gloo on CPU).",
    )
    start = p.add_argument_group("start from (one of)")
    start.add_argument(
        "--backbone",
        choices=tuple(BACKBONES),
        help="ImageNet-pretrained backbone, NetVLAD by k-means",
    )
    start.add_argument(
        "--weights", help="a checkpoint or public NetVLAD weights (keeps its centroids)"
    )
    start.add_argument("--resume", type=Path, help="a run's last.pt: continue that run")
    start.add_argument(
        "--backbone-weights", default="", help="local ImageNet state dict for --backbone"
    )
    start.add_argument("--num-clusters", type=int, default=64, help="K for --backbone (64)")
    start.add_argument(
        "--init-clusters", action="store_true", help="refit the centroids of --weights by k-means"
    )
    data = p.add_argument_group(
        "data: bags (dir/.mcap/.db3) or image folders (poses.csv inside, or UTM names)"
    )
    data.add_argument(
        "--db", action="append", default=[], help="training database source (repeatable)"
    )
    data.add_argument(
        "--queries", action="append", default=[], help="training query source (repeatable)"
    )
    data.add_argument(
        "--val-db", action="append", default=[], help="validation database (default: training)"
    )
    data.add_argument("--val-queries", action="append", default=[], help="validation queries")
    data.add_argument("--mat", type=Path, help="training dbStruct .mat (instead of --db/--queries)")
    data.add_argument("--val-mat", type=Path, help="validation dbStruct .mat")
    data.add_argument("--image-root", type=Path, help="image root for --mat / --val-mat")
    add_pose_source(data)
    data.add_argument("--min-distance", type=float, help="bag keyframes: metres moved (1.0)")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--config", type=Path, help="YAML with train / keyframes sections")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--no-progress", action="store_true")
    settings = p.add_argument_group("training settings (override --config; defaults in brackets)")
    for f in dataclasses.fields(
        TrainConfig
    ):  # one flag per TrainConfig field, described by the config
        flag, help_ = "--" + f.name.replace("_", "-"), f"{f.metadata['description']} [{f.default}]"
        if isinstance(f.default, bool):
            settings.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_
            )
        else:
            settings.add_argument(flag, dest=f.name, type=type(f.default), default=None, help=help_)
    return p


def train_config(args: argparse.Namespace, base: TrainConfig | None) -> TrainConfig:
    if base is None:
        base = (
            load_yaml_section(args.config, "train", TrainConfig) if args.config else TrainConfig()
        )
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name) is not None
    }
    return dataclasses.replace(base, **overrides)


def splits(
    args: argparse.Namespace, p: argparse.ArgumentParser, config: TrainConfig
) -> tuple[Split, Split]:
    size = (config.width, config.height)
    if args.mat:
        if args.db or args.queries or not args.image_root:
            p.error("--mat needs --image-root and replaces --db/--queries")
        radii = (config.positive_radius, config.negative_radius)
        train = from_mat(args.mat, args.image_root, *radii)
        val = from_mat(args.val_mat, args.image_root, *radii) if args.val_mat else None
    else:
        if not args.db or not args.queries:
            p.error("give --db and --queries sources (or --mat)")
        keyframes = (
            load_yaml_section(args.config, "keyframes", KeyframeConfig)
            if args.config
            else KeyframeConfig()
        )
        if args.min_distance is not None:
            keyframes = dataclasses.replace(keyframes, min_distance=args.min_distance)

        def place_set(paths: list[str], queries: bool = False):
            sources = sources_from(paths, args, p, queries=queries)  # a .mat: that half
            return from_sources(sources, size, keyframes, progress=not args.no_progress)

        train = Split(place_set(args.db), place_set(args.queries, queries=True))
        val = None
        if args.val_queries:
            val = Split(
                place_set(args.val_db) if args.val_db else train.references,
                place_set(args.val_queries, queries=True),
            )
    if val is None:
        log.warning(
            "no validation set given: validating on the training set measures fit, not "
            "generalization"
        )
        val = train
    return train, val


@edge("train")
def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if sum(x is not None for x in (args.backbone, args.weights, args.resume)) != 1:
        p.error("give exactly one of --backbone, --weights and --resume")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    distributed = Distributed.from_environment()
    checkpoint = saved = None
    if args.resume:
        model, saved, checkpoint = read_training_checkpoint(args.resume)
        config = train_config(args, saved)
        check_resumable(saved, config)
    else:
        config = train_config(args, None)
        model = (
            load(args.weights)
            if args.weights
            else build_model(
                ArchConfig(args.backbone, args.num_clusters),
                pretrained=True,
                backbone_weights=args.backbone_weights,
            )
        )
    train, val = splits(args, p, config)
    trainer = Trainer(
        model, train, val, config, args.out, args.device, distributed, not args.no_progress
    )
    if checkpoint is not None:
        trainer.resume(checkpoint)
    elif args.backbone or args.init_clusters:
        trainer.initialize_clusters()
    history = trainer.fit()
    if distributed.rank == 0:
        best = max(history, key=lambda row: (row["recall@5"], row["recall@1"]))
        print(
            f"trained {history[-1]['epoch']} epochs; best validation R@1/5/10 "
            f"{best['recall@1']:.3f}/{best['recall@5']:.3f}/{best['recall@10']:.3f} at epoch "
            f"{best['epoch']} "
            f"(before training: {history[0]['recall@1']:.3f}/{history[0]['recall@5']:.3f}/"
            f"{history[0]['recall@10']:.3f})\nrun: {args.out} (best.pt, last.pt, metrics.csv, "
            f"training.png)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
