"""Training and validation sets: images with metric positions, from rosbags, image folders or a
Pittsburgh / Tokyo Time Machine ``.mat``, with random access to every image.

Bag frames are read exactly as map building reads them (poses, tolerance, keyframes), resized once
to the training size and kept in memory as JPEG; folder images stay on disk and are read on use.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ros2_netvlad.config import KeyframeConfig
from ros2_netvlad.imaging import compressed_to_rgb, resize, rgb_to_jpeg
from ros2_netvlad.sources import folders as datasets
from ros2_netvlad.sources.source import MatSource, Source, frames_of, plan_keyframes
from ros2_netvlad.training.mining import TripletSets, triplet_sets

log = logging.getLogger(__name__)


@dataclass
class PlaceSet:
    """Images (file paths or JPEG bytes) with positions (N×3, metres) and unique names."""

    images: list[Path | bytes]
    positions: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 image ``index`` resized to ``size`` (width, height)."""
        item = self.images[index]
        image = (
            compressed_to_rgb(item, "jpeg") if isinstance(item, bytes) else datasets.read_rgb(item)
        )
        return resize(image, size)

    def check_readable(self) -> None:
        """Fails naming the first missing image file, before hours of training find it."""
        missing = [p for p in self.images if isinstance(p, Path) and not p.is_file()]
        if missing:
            raise datasets.DatasetError(
                f"{len(missing)} of {len(self)} images are missing, e.g. {missing[0]}"
            )


class ImageLoader:
    """Loads many images in parallel threads (decoding and resizing release the GIL)."""

    def __init__(self, size: tuple[int, int], threads: int = 4) -> None:
        self.size = size
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="images")

    def __call__(self, place_set: PlaceSet, indices: Sequence[int]) -> list[np.ndarray]:
        return self.pairs([(place_set, int(i)) for i in indices])

    def pairs(self, items: Sequence[tuple[PlaceSet, int]]) -> list[np.ndarray]:
        """Images from several sets at once, in the given order."""
        return list(self.pool.map(lambda item: item[0].load(item[1], self.size), items))


@dataclass
class Split:
    """Reference images and the queries matched against them (training or validation)."""

    references: PlaceSet  # the paper's "database": reference images with known positions
    queries: PlaceSet

    def triplets(self, positive_radius: float, negative_radius: float) -> TripletSets:
        """Potential positives / non-negatives per query; an image never counts as its own positive
        (when the same traversal is given as database and queries)."""
        sets = triplet_sets(
            self.queries.positions, self.references.positions, positive_radius, negative_radius
        )
        index = {name: i for i, name in enumerate(self.references.names)}
        keep, positives, non_negatives = [], [], []
        for q, pos, non in zip(sets.queries, sets.positives, sets.non_negatives):
            self_id = index.get(self.queries.names[q], -1)
            pos = pos[pos != self_id]
            if len(pos):
                keep.append(q)
                positives.append(pos)
                non_negatives.append(non)
        return TripletSets(
            np.array(keep, np.int64), positives, non_negatives, len(self.queries) - len(keep)
        )


# --- building sets --------------------------------------------------------------------------------


def from_sources(
    sources: list[Source],
    size: tuple[int, int],
    keyframes: KeyframeConfig = KeyframeConfig(),
    progress: bool = False,
) -> PlaceSet:
    """Keyframes of bags and folders, in order. Bag images are decoded once, resized to ``size``
    and kept as JPEG; images that already live in files are read from disk when used."""
    counts: Counter = Counter()
    plan = plan_keyframes(sources, keyframes, counts)
    if not plan:
        raise datasets.DatasetError(
            f"no usable images in {', '.join(s.name for s in sources)}: {dict(counts)}"
        )
    images: list[Path | bytes] = [b""] * len(plan)
    positions, names = np.zeros((len(plan), 3)), [""] * len(plan)
    to_decode = []
    for n, (s, key) in enumerate(plan):
        stored = sources[s].stored_file(key)
        if stored is None:
            to_decode.append((s, key))
        else:
            images[n], positions[n], names[n] = stored[0], stored[1], str(stored[0])
    slots = {key: n for n, key in enumerate(plan)}
    frames = frames_of(sources, to_decode)
    for k, frame in tqdm(
        frames, total=len(to_decode), desc="reading bag frames", unit="img", disable=not progress
    ):
        n = slots[to_decode[k]]
        images[n], positions[n], names[n] = (
            rgb_to_jpeg(resize(frame.image, size), 95),
            frame.pose.position,
            f"{frame.source}@{frame.stamp_ns}",
        )
    return PlaceSet(images, positions, names)


def from_mat(
    mat: str | Path,
    image_root: str | Path,
    positive_radius: float = 10.0,
    negative_radius: float = 25.0,
) -> Split:
    """The database and query images of a dbStruct .mat, paths relative to ``image_root``."""
    dataset = datasets.load_mat(mat)
    thresholds = (math.sqrt(dataset.non_triv_pos_dist_sq_thr), dataset.pos_dist_thr)
    if thresholds != (positive_radius, negative_radius):
        log.warning(
            "%s defines positives within %.1f m and matches within %.1f m; training uses %.1f m / "
            "%.1f m "
            "(set train.positive_radius / negative_radius to follow the dataset)",
            mat,
            *thresholds,
            positive_radius,
            negative_radius,
        )

    def place_set(queries: bool) -> PlaceSet:  # images stay files: nothing is decoded here
        return from_sources([MatSource(Path(image_root), mat=Path(mat), queries=queries)], (0, 0))

    split = Split(place_set(queries=False), place_set(queries=True))
    split.references.check_readable()
    split.queries.check_readable()
    return split
