"""Map building: frames with poses (bags or image folders) → keyframes → descriptors → map
directory.

Runs in one process, or under ``torchrun`` where each rank describes a shard of the keyframes and
rank 0 merges them, in keyframe order, into one map.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np
from tqdm import tqdm

from . import bags, datasets
from .clustering import initialize_netvlad
from .config import DatabaseConfig, KeyframeConfig, ModelConfig, resolve_describe, resolved
from .database import Entry, MapDatabase
from .describe import Describer
from .distributed import Distributed, rank_device
from .errors import InputError
from .imaging import rgb_to_jpeg
from .keyframes import KeyframeSelector
from .model import PlaceNet
from .weights import checkpoint_bytes, fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BagSource:
    path: Path
    image_topic: str
    poses: bags.PoseLookup


@dataclass(frozen=True)
class FolderSource:
    folder: Path
    poses_csv: Path | None = None


Source = Union[BagSource, FolderSource]


@dataclass
class BuildReport:
    path: Path | None
    entries: int
    counts: Counter
    extent: tuple[np.ndarray, np.ndarray] | None
    seconds: float
    describe_seconds: float
    kmeans_alpha: float | None = None

    def summary(self) -> str:
        skipped = (
            ", ".join(
                f"{n} {why}"
                for why, n in self.counts.items()
                if why not in ("images", "kept") and n
            )
            or "none"
        )
        extent = (
            "n/a"
            if self.extent is None
            else " x ".join(f"{hi - lo:.1f}" for lo, hi in zip(*self.extent)) + " m"
        )
        rate = self.entries / self.seconds if self.seconds else 0.0
        return (
            f"map: {self.path}\n  entries: {self.entries} of {self.counts['images']} images\n"
            f"  skipped: {skipped}\n  extent (x y z): {extent}\n"
            f"  time: {self.seconds:.1f} s ({rate:.2f} entries/s, descriptor extraction "
            f"{self.describe_seconds:.1f} s)"
        )


@dataclass(frozen=True)
class BuildOptions:
    model: ModelConfig = ModelConfig()
    database: DatabaseConfig = DatabaseConfig()
    keyframes: KeyframeConfig = KeyframeConfig()
    fit_clusters: bool = False  # k-means NetVLAD centroids on the map's own keyframes
    kmeans_images: int = 100
    store_images: bool = False  # JPEG keyframes in the map, for geometric verification
    progress: bool = True


def build_map(
    out: str | Path,
    sources: list[Source],
    model: PlaceNet,
    options: BuildOptions = BuildOptions(),
    distributed: Distributed | None = None,
) -> BuildReport:
    """Builds (on rank 0: writes) the map; returns a report. The model travels as ``model.pt``."""
    start = time.perf_counter()
    distributed = distributed or Distributed()
    counts: Counter = Counter()
    plan = plan_keyframes(sources, options.keyframes, counts)
    if not plan:
        raise InputError(
            f"no keyframes: {dict(counts)} — check the topics, pose source and tolerance"
        )
    describer = Describer(
        model, dataclasses.replace(options.model, device=str(rank_device(options.model.device)))
    )
    alpha = (
        _fit_clusters(describer, sources, plan, options, distributed)
        if options.fit_clusters
        else None
    )
    mine = plan[distributed.rank :: distributed.world]
    described_at = time.perf_counter()
    rows = list(_describe(describer, sources, mine, options, counts))
    describe_seconds = time.perf_counter() - described_at
    rows = _gather(rows, distributed)
    if distributed.rank != 0:
        return BuildReport(
            None, len(rows), counts, None, time.perf_counter() - start, describe_seconds, alpha
        )
    path = _write(out, rows, model, sources, options)
    positions = np.array([r[2].position for r in rows])
    extent = (positions.min(0), positions.max(0))
    return BuildReport(
        path, len(rows), counts, extent, time.perf_counter() - start, describe_seconds, alpha
    )


# --- keyframe plan --------------------------------------------------------------------------------


def plan_keyframes(
    sources: list[Source], config: KeyframeConfig, counts: Counter
) -> list[tuple[int, int]]:
    """(source index, stamp or item index) of every keyframe, without decoding any image."""
    plan: list[tuple[int, int]] = []
    for s, source in enumerate(sources):
        if isinstance(source, FolderSource):
            items = datasets.folder_images(source.folder, source.poses_csv)
            counts["images"] += len(items)
            plan += [(s, i) for i in range(len(items))]
            continue
        selector = KeyframeSelector(config)

        def take(pose, stamp, s=s, selector=selector) -> bool:
            if selector.accept(pose, stamp):
                plan.append((s, stamp))
            return False  # nothing is decoded while planning

        for _ in bags.frames(source.path, source.image_topic, source.poses, take, counts):
            pass
    counts["not a keyframe"] = counts["images"] - counts["no pose within tolerance"] - len(plan)
    return plan


def frames_of(
    sources: list[Source], keys: list[tuple[int, int]], counts: Counter | None = None
) -> Iterator[tuple[int, bags.Frame]]:
    """(plan position, decoded frame) for the given keys, in plan order."""
    order = {key: n for n, key in enumerate(keys)}
    for s, source in enumerate(sources):
        wanted = {k for (src, k) in keys if src == s}
        if not wanted:
            continue
        if isinstance(source, FolderSource):
            items = datasets.folder_images(source.folder, source.poses_csv)
            for i in sorted(wanted):
                item = items[i]
                frame = bags.Frame(
                    i, datasets.read_rgb(item.path), item.pose, "map", item.path.name, geo=item.geo
                )
                yield order[(s, i)], frame
            continue

        def keep(pose, stamp, wanted=wanted):
            return stamp in wanted

        for frame in bags.frames(
            source.path,
            source.image_topic,
            source.poses,
            keep,
            counts if counts is not None else Counter(),
        ):
            yield order[(s, frame.stamp_ns)], frame


# --- steps ----------------------------------------------------------------------------------------


def _fit_clusters(
    describer: Describer,
    sources: list[Source],
    plan: list,
    options: BuildOptions,
    distributed: Distributed,
) -> float | None:
    alpha = None
    if distributed.rank == 0:
        step = max(1, len(plan) // options.kmeans_images)
        sample = plan[::step][: options.kmeans_images]
        images = (frame.image for _, frame in frames_of(sources, sample))
        alpha = initialize_netvlad(describer, images, progress=options.progress)
    return distributed.broadcast_module(describer.model.pool, alpha)


def _describe(
    describer: Describer, sources: list[Source], keys: list, options: BuildOptions, counts: Counter
) -> Iterator[tuple]:
    """(plan position, descriptor, entry, jpeg|None) per keyframe; decoding and resizing run in a
    background thread so they overlap with inference."""
    decoding: Counter = Counter()

    def prepared() -> Iterator[tuple[int, bags.Frame]]:
        for n, frame in frames_of(sources, keys, decoding):
            frame.image = describer.resize(frame.image)
            yield n, frame

    batch: list[tuple[int, bags.Frame]] = []
    bar = tqdm(
        total=len(keys), desc="describing keyframes", unit="img", disable=not options.progress
    )
    for item in prefetch(prepared(), depth=2 * options.model.batch_size):
        batch.append(item)
        if len(batch) == options.model.batch_size:
            yield from _describe_batch(describer, batch, options.store_images)
            bar.update(len(batch))
            batch = []
    if batch:
        yield from _describe_batch(describer, batch, options.store_images)
        bar.update(len(batch))
    bar.close()
    counts["undecodable image"] += decoding["undecodable image"]


def _describe_batch(describer: Describer, batch: list, store_images: bool) -> Iterator[tuple]:
    descriptors = describer.describe([frame.image for _, frame in batch])
    for (n, frame), descriptor in zip(batch, descriptors):
        entry = Entry(
            frame.stamp_ns,
            frame.frame_id,
            tuple(frame.pose.position),
            tuple(frame.pose.orientation),
            None if frame.covariance is None else tuple(frame.covariance),
            frame.geo,
            frame.source,
        )
        yield n, descriptor, entry, rgb_to_jpeg(frame.image) if store_images else None


def prefetch(items: Iterable, depth: int) -> Iterator:
    """Runs ``items`` in a background thread, ``depth`` ahead; re-raises its errors here."""
    buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done = object()

    def produce() -> None:
        try:
            for item in items:
                buffer.put(item)
            buffer.put(done)
        except BaseException as error:  # handed to the consumer
            buffer.put(error)

    threading.Thread(target=produce, daemon=True, name="prefetch").start()
    while (item := buffer.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _gather(rows: list[tuple], distributed: Distributed) -> list[tuple]:
    shards = distributed.gather_to_root(rows)
    rows = [row for shard in shards for row in shard] if shards is not None else rows
    return sorted(rows, key=lambda row: row[0])


def _write(
    out: str | Path,
    rows: list[tuple],
    model: PlaceNet,
    sources: list[Source],
    options: BuildOptions,
) -> Path:
    database = MapDatabase.create(
        model.output_dim, options.database, fingerprint(model), checkpoint_bytes(model)
    )
    descriptors = np.stack([r[1] for r in rows])
    images = [r[3] for r in rows] if options.store_images else None
    database.add(descriptors, [r[2] for r in rows], images)
    model_config = resolve_describe(options.model)[0]
    database.record_describe(model_config)
    database.manifest["build"] = resolved(
        model=model_config,
        database=options.database,
        keyframes=options.keyframes,
        sources=[str(s) for s in sources],
        fit_clusters=options.fit_clusters,
        store_images=options.store_images,
    )
    origins = [s.poses.origin for s in sources if isinstance(s, BagSource) and s.poses.origin]
    if origins:  # GNSS poses are metres around this latitude, longitude, altitude
        database.manifest["geo_origin"] = list(origins[0])
    return database.save(out)
