"""Map building: frames with poses (bags or image folders) → keyframes → descriptors → map
directory.

Runs in one process, or under ``torchrun`` where each rank describes a shard of the keyframes and
rank 0 merges them, in keyframe order, into one map.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
from tqdm import tqdm

from ros2_netvlad.camera import Camera
from ros2_netvlad.config import DatabaseConfig, DescriberConfig, KeyframeConfig
from ros2_netvlad.config_files import resolved
from ros2_netvlad.errors import InputError
from ros2_netvlad.imaging import rgb_to_jpeg
from ros2_netvlad.maps.database import Entry, MapDatabase
from ros2_netvlad.maps.lookalikes import measure_lookalikes
from ros2_netvlad.model.checkpoints import checkpoint_bytes, fingerprint
from ros2_netvlad.model.clustering import initialize_netvlad
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.distributed import Distributed, rank_device
from ros2_netvlad.model.netvlad import PlaceNet
from ros2_netvlad.resize import recorded_resize, resize_rule_text, resolve_resize
from ros2_netvlad.sources.prefetch import prefetch
from ros2_netvlad.sources.rosbag import Frame
from ros2_netvlad.sources.source import (
    EvenSample,
    Source,
    build_origin,
    frames_of,
    plan_keyframes,
)
from ros2_netvlad.verification.features import FeatureSettings, LocalFeatures
from ros2_netvlad.verification.registry import make_verifier

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    path: Path | None
    entries: int
    counts: Counter
    extent: tuple[np.ndarray, np.ndarray] | None
    seconds: float
    describe_seconds: float
    kmeans_alpha: float | None = None
    described: str = ""  # where and how: device, precision and backend with their reasons

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
            f"{self.describe_seconds:.1f} s)\n  described: {self.described}"
        )


class BuiltEntry(NamedTuple):
    """One described keyframe, on its way into the map."""

    order: int  # position in the keyframe plan: the map keeps plan order across ranks
    descriptor: np.ndarray
    entry: Entry
    jpeg: bytes | None
    features: LocalFeatures | None


@dataclass(frozen=True)
class BuildOptions:
    model: DescriberConfig = DescriberConfig()
    database: DatabaseConfig = DatabaseConfig()
    keyframes: KeyframeConfig = KeyframeConfig()
    fit_clusters: bool = False  # k-means NetVLAD centroids on the map's own keyframes
    kmeans_images: int = 100
    kmeans_seed: int = 0  # of the local-feature sample and k-means (maps from one seed repeat)
    store_images: bool = False  # JPEG keyframes in the map (evaluation reports show them)
    # local features stored per entry for re-ranking and verification; None = none
    local_features: FeatureSettings | None = FeatureSettings()
    # the map images' camera (relative poses need it); None = the first source's CameraInfo
    camera: Camera | None = None
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
    # The weights' own resize rule (a trained checkpoint records it) unless one is set: another
    # one is allowed, with a warning, since the images a map describes may differ from training.
    model_config, warning = resolve_resize(options.model, model.resize_rule, force=True)
    if warning:
        log.warning(
            "describing at %s, but the weights were trained at %s",
            resize_rule_text(model_config),
            resize_rule_text(model.resize_rule),
        )
    device = str(rank_device(options.model.device))
    describer = Describer(model, dataclasses.replace(model_config, device=device))
    # The k-means sample is decoded while planning, so a bag is read twice, not three times.
    sample = None
    if options.fit_clusters and distributed.rank == 0:
        sample = EvenSample(options.kmeans_images, keep=lambda image: describer.resize(image))
    options = dataclasses.replace(options, camera=options.camera or _recorded_camera(sources))
    plan = plan_keyframes(sources, options.keyframes, counts, sample=sample)
    if not plan:
        raise InputError(
            f"no keyframes: {dict(counts)} — check the topics, pose source and tolerance"
        )
    alpha = _fit_clusters(describer, sample, options, distributed) if options.fit_clusters else None
    mine = plan[distributed.rank :: distributed.world_size]
    described_at = time.perf_counter()
    rows = list(_describe(describer, sources, mine, options, counts))
    describe_seconds = time.perf_counter() - described_at
    rows = _gather(rows, distributed)
    if distributed.rank != 0:
        return BuildReport(
            None, len(rows), counts, None, time.perf_counter() - start, describe_seconds, alpha
        )
    options = dataclasses.replace(options, model=model_config)
    path = _write(out, rows, model, sources, options, describer.precision.name)
    positions = np.array([row.entry.position for row in rows])
    extent = (positions.min(0), positions.max(0))
    seconds = time.perf_counter() - start
    return BuildReport(
        path, len(rows), counts, extent, seconds, describe_seconds, alpha, describer.summary
    )


# --- steps ----------------------------------------------------------------------------------------
def _recorded_camera(sources: list[Source]) -> Camera | None:
    """The first source's recorded camera (bags with CameraInfo); folders have none."""
    for source in sources:
        camera = getattr(source, "camera", None)
        if camera is not None:
            log.info(
                "camera from %s: %dx%d %s",
                source.name,
                camera.width,
                camera.height,
                camera.distortion,
            )
            return camera
    return None


def _fit_clusters(
    describer: Describer,
    sample: EvenSample | None,
    options: BuildOptions,
    distributed: Distributed,
) -> float | None:
    alpha = None
    if distributed.rank == 0:
        alpha = initialize_netvlad(
            describer, sample.items(), seed=options.kmeans_seed, progress=options.progress
        )
    return distributed.broadcast_module(describer.model.pool, alpha)


def _describe(
    describer: Describer, sources: list[Source], keys: list, options: BuildOptions, counts: Counter
) -> Iterator[BuiltEntry]:
    """One row per keyframe; decoding, local features (from the full-size frame, as the node
    does) and resizing run in a background thread so they overlap with inference."""
    decoding: Counter = Counter()
    settings, camera = options.local_features, options.camera
    extractor = make_verifier(settings).extract if settings else None

    def prepared() -> Iterator[tuple[int, Frame, LocalFeatures | None]]:
        for n, frame in frames_of(sources, keys, decoding):
            features = extractor(frame.image) if extractor else None
            if features is not None and frame.depth is not None and camera is not None:
                features = features.with_depths(frame.depth, camera, settings)
            frame.image, frame.depth = describer.resize(frame.image), None
            yield n, frame, features

    batch: list[tuple[int, Frame, LocalFeatures | None]] = []
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


def _describe_batch(describer: Describer, batch: list, store_images: bool) -> Iterator[BuiltEntry]:
    descriptors = describer.describe([frame.image for _, frame, _ in batch])
    for (n, frame, features), descriptor in zip(batch, descriptors):
        entry = Entry(
            frame.stamp_ns,
            frame.frame_id,
            tuple(frame.pose.position),
            tuple(frame.pose.orientation),
            None if frame.covariance is None else tuple(frame.covariance),
            frame.geo,
            frame.source,
        )
        jpeg = rgb_to_jpeg(frame.image) if store_images else None
        yield BuiltEntry(n, descriptor, entry, jpeg, features)


def _gather(rows: list[BuiltEntry], distributed: Distributed) -> list[BuiltEntry]:
    shards = distributed.gather_to_root(rows)
    rows = [row for shard in shards for row in shard] if shards is not None else rows
    return sorted(rows, key=lambda row: row.order)


def _write(
    out: str | Path,
    rows: list[BuiltEntry],
    model: PlaceNet,
    sources: list[Source],
    options: BuildOptions,
    precision: str,
) -> Path:
    database = MapDatabase.create(
        model.output_dim, options.database, fingerprint(model), checkpoint_bytes(model)
    )
    model_config = resolve_resize(options.model)[0]
    origin = build_origin(sources)  # GNSS poses are metres around this lat, lon, alt
    database.record(
        resize=recorded_resize(model_config),
        precision=precision,
        local_features=options.local_features,  # the database adds the verifier's codec
        geo_origin=tuple(origin) if origin else None,
        camera=options.camera,
    )
    features = database.manifest.local_features
    database.record(
        build=resolved(
            model=model_config,
            database=options.database,
            keyframes=options.keyframes,
            sources=[str(s) for s in sources],
            fit_clusters=options.fit_clusters,
            store_images=options.store_images,
            local_features=features.manifest() if features else None,
        )
    )
    database.add(
        np.stack([row.descriptor for row in rows]),
        [row.entry for row in rows],
        [row.jpeg for row in rows] if options.store_images else None,
        [row.features for row in rows] if features else None,
    )
    database.record(lookalikes=measure_lookalikes(database))  # the gate against its look-alikes
    return database.save(out)
