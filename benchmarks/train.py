"""Training speed at 640×480: training images/s (forward+backward), cache-refresh images/s, and the
share of a training query spent mining vs in the model.

Per backbone, in one run:
- baseline: the bare network forward on a preloaded batch (inference, no data pipeline);
- cache refresh: the trainer's descriptor cache (JPEG decode + resize + forward), as a ratio of the
  baseline;
- training: real trainer steps of one query each (query + best positive + 10 hard negatives; the
  margin is set so every query trains on all 10), default trainable layers (conv5 + NetVLAD);
- mining: per query, best positive + hard negatives drawn from a Pittsburgh-sized cache
  (10,000 database descriptors, 1000 negatives sampled), against the model time per query.

Run: `.venv/bin/python benchmarks/train.py [--backbones vgg16 efficientnet_lite0] [--device cuda]`.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from ros2_netvlad.config import ArchConfig
from ros2_netvlad.demo import world
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.training.config import TrainConfig
from ros2_netvlad.training.mining import best_positive, hard_negatives
from ros2_netvlad.training.placesets import PlaceSet, Split
from ros2_netvlad.training.trainer import Trainer

WIDTH, HEIGHT = 640, 480


def subset(place_set: PlaceSet, count: int) -> PlaceSet:
    return PlaceSet(place_set.images[:count], place_set.positions[:count], place_set.names[:count])


def baseline_forward(trainer: Trainer, batch: int, repeats: int) -> float:
    """Images/s of the bare forward pass on a tensor already in memory."""
    model, device = trainer.model, trainer.device
    x = (
        torch.rand(batch, 3, HEIGHT, WIDTH, device=device)
        .mul(255)
        .contiguous(memory_format=torch.channels_last)
    )
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=torch.float16, enabled=trainer.amp),
    ):
        model(x)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        _sync(device)
    return batch * repeats / (time.perf_counter() - start)


def mining_seconds_per_query(
    dim: int, device: torch.device, database_size: int = 10_000, queries: int = 20
) -> float:
    rng = np.random.default_rng(0)
    cache = torch.nn.functional.normalize(torch.randn(database_size, dim), dim=1)
    if device.type == "cuda":
        cache = cache.to(device, torch.float16)
    start = time.perf_counter()
    for q in range(queries):
        positives = rng.choice(database_size, 10, replace=False)
        non_negatives = np.union1d(positives, rng.choice(database_size, 40, replace=False))
        query = cache[q]
        positive = best_positive(query, cache, positives)
        hard_negatives(query, cache, non_negatives, positive, rng, 1000, 10, margin=10.0)
    return (time.perf_counter() - start) / queries


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(backbone: str, device: str, steps: int, cache_images: int) -> None:
    places = world.places(6)
    database = world.view_set(places, seed=1, size=(WIDTH, HEIGHT))
    queries = subset(world.view_set(places, seed=2, changed=True, size=(WIDTH, HEIGHT)), steps)
    config = TrainConfig(
        epochs=1,
        batch_size=1,
        cache_refresh=steps,
        width=WIDTH,
        height=HEIGHT,
        margin=10.0,
        image_batch=4,
    )  # the baseline's batch
    model = build_model(ArchConfig(backbone, 64))
    trainer = Trainer(
        model,
        Split(database, queries),
        Split(subset(database, 2), subset(queries, 1)),
        config,
        "/tmp/ros2_netvlad_bench_train",
        device,
        progress=False,
    )
    base = baseline_forward(trainer, 4, 2)

    cached = np.arange(min(cache_images, len(database)))
    trainer._describe(database, cached[:4], "warm-up")
    start = time.perf_counter()
    trainer._describe(database, cached, "cache")
    _sync(trainer.device)
    refresh = len(cached) / (time.perf_counter() - start)

    trainer.train_epoch(1)  # warm-up: backward kernels, optimizer state
    trainer.timings.clear()
    trainer.train_epoch(2)
    _sync(trainer.device)
    timings = trainer.timings
    trained_images = steps * (2 + config.hard_negatives)
    model_per_query = timings["model"] / steps
    mining = mining_seconds_per_query(trainer.describer.output_dim, trainer.device)
    print(
        f"{backbone:<20}{str(trainer.device):>7}{base:>10.2f}{refresh:>10.2f}{refresh / base:>7.2f}"
        f"{trained_images / timings['model']:>10.2f}"
        f"{trained_images / timings['model'] / base:>7.2f}"
        f"{1000 * model_per_query:>10.0f}{1000 * timings['mining'] / steps:>9.1f}"
        f"{1000 * mining:>9.1f}"
        f"{100 * mining / (mining + model_per_query):>8.2f}%"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbones", nargs="+", default=["vgg16", "efficientnet_lite0"])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=2, help="training queries timed per backbone")
    p.add_argument("--cache-images", type=int, default=16)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(
        f"{WIDTH}x{HEIGHT}, {torch.get_num_threads()} CPU threads; fp32 on the CPU, AMP fp16 on "
        f"CUDA.\n"
        "img/s: baseline = bare forward (batch 4); refresh = descriptor cache incl. JPEG decode "
        "(ratio to "
        "baseline);\ntrain = forward+backward images in training steps, 12 per query (ratio to "
        "baseline); "
        "ms/query: model, mining here (18-image db), mining at a 10k-image cache; mining share at "
        "10k."
    )
    print(
        f"{'backbone':<20}{'device':>7}{'baseline':>10}{'refresh':>10}{'ratio':>7}{'train':>10}{'ratio':>7}"
        f"{'model ms':>10}{'mine ms':>9}{'@10k ms':>9}{'mining':>9}"
    )
    for backbone in args.backbones:
        bench(backbone, args.device, args.steps, args.cache_images)


if __name__ == "__main__":
    main()
