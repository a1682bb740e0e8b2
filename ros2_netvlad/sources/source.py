"""Sources of posed images, one interface for rosbags and image folders: what maps and training sets
are built from.

A source first plans its keyframes without decoding any image (``plan``), then decodes exactly the
planned ones (``frames``). A bag reads its poses once, in ``plan``, and never again. GNSS positions
of all sources of one build are metres around one explicit origin: the first fix of the first
GNSS source, unless the caller gives one (a query set against an existing map gives the map's).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterator, Protocol

import numpy as np

from ros2_netvlad.camera import OPTICAL_IN_BODY, Camera, camera_from_info, camera_info_topic
from ros2_netvlad.config import KeyframeConfig
from ros2_netvlad.sources import folders
from ros2_netvlad.sources.keyframes import KeyframeSelector
from ros2_netvlad.sources.rosbag import (
    BagPoses,
    Frame,
    PoseLookup,
    camera_mount,
    depth_matcher,
    frames,
    read_camera_info,
)

Origin = tuple[float, float, float]


class EvenSample:
    """An evenly spaced sample of at most ``size`` items of a stream of unknown length, taken while
    planning so that no extra pass over a bag is needed: every ``step``-th item is kept (``wants``
    says whether the next one is, so only those are decoded), and when more than twice ``size`` are
    kept, every other one is dropped and the step doubles. ``keep`` shrinks an item when kept."""

    def __init__(self, size: int, keep=lambda item: item) -> None:
        self.size, self.keep, self.step, self.seen, self._items = size, keep, 1, 0, []

    def wants(self) -> bool:
        return self.seen % self.step == 0

    def offer(self, item) -> None:
        """Called once per item, in order; ``item`` may be None when ``wants`` was False."""
        if self.wants():
            self._items.append(self.keep(item))
        self.seen += 1
        if len(self._items) > 2 * self.size:
            self._items, self.step = self._items[::2], self.step * 2

    def items(self) -> list:
        kept = len(self._items)
        if kept <= self.size:
            return list(self._items)
        return [self._items[i * kept // self.size] for i in range(self.size)]  # evenly spread


class Source(Protocol):
    name: str

    def plan(
        self,
        keyframes: KeyframeConfig,
        counts: Counter,
        origin: Origin | None,
        sample: EvenSample | None = None,
    ) -> list[int]:
        """Keys (bag stamps or folder item indices) of the keyframes, decoding only the images
        ``sample`` wants (offered every keyframe, in order)."""

    def frames(self, keys: Collection[int], counts: Counter | None = None) -> Iterator[Frame]:
        """The planned frames with those keys, decoded, in source order."""

    def stored_file(self, key: int) -> tuple[Path, np.ndarray] | None:
        """(image file, position) when the image already lives in a file, else None."""

    @property
    def geo_origin(self) -> Origin | None:
        """The GNSS origin the planned positions are metres around (None without GNSS)."""


@dataclass(eq=False)
class BagSource:
    path: Path
    image_topic: str
    poses: PoseLookup
    camera_topic: str = ""  # CameraInfo; empty = the image topic's sibling (…/camera_info)
    depth_topic: str = ""  # an aligned depth image (16UC1 mm or 32FC1 m); empty = none
    # the optical frame in the posed frame; None = from the bag's tf, else REP 103 optical axes
    camera_to_base: tuple[float, ...] | None = None
    _poses: BagPoses | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.path}:{self.image_topic}"

    @property
    def geo_origin(self) -> Origin | None:
        return self._read_poses(None).origin

    def plan(
        self,
        keyframes: KeyframeConfig,
        counts: Counter,
        origin: Origin | None,
        sample: EvenSample | None = None,
    ) -> list[int]:
        selector, keys = KeyframeSelector(keyframes), []

        def take(pose, stamp) -> bool:  # True decodes the frame: only for the sample
            if not selector.accept(pose, stamp):
                return False
            keys.append(stamp)
            if sample is None:
                return False
            if sample.wants():
                return True  # decoded, then offered below
            sample.offer(None)
            return False

        poses = self._read_poses(origin)
        for frame in frames(self.path, self.image_topic, poses, take, counts):
            counts["kept"] -= (
                1  # decoded for the sample only; kept frames are counted when described
            )
            sample.offer(frame.image)
        return keys

    def frames(self, keys: Collection[int], counts: Counter | None = None) -> Iterator[Frame]:
        wanted = set(keys)
        poses = self._read_poses(None)
        depth_at = depth_matcher(self.path, self.depth_topic) if self.depth_topic else None
        for frame in frames(self.path, self.image_topic, poses, lambda _, s: s in wanted, counts):
            if depth_at is not None:
                frame.depth = depth_at(frame.stamp_ns)
            yield frame

    @property
    def camera(self) -> Camera | None:
        """The recorded CameraInfo's camera (None when the bag has none), mounted as given, else
        as the bag's tf says, else with REP 103 optical axes at the posed frame's origin."""
        info = read_camera_info(self.path, self.camera_topic or camera_info_topic(self.image_topic))
        if info is None:
            return None
        mount = self.camera_to_base
        if mount is None:
            found = camera_mount(self.path, info.header.frame_id, self.poses)
            mount = OPTICAL_IN_BODY if found is None else (*found.position, *found.orientation)
        return camera_from_info(info, tuple(mount))

    def stored_file(self, key: int) -> tuple[Path, np.ndarray] | None:
        return None

    def _read_poses(self, origin: Origin | None) -> BagPoses:
        if self._poses is None:
            lookup = dataclasses.replace(self.poses, origin=self.poses.origin or origin)
            self._poses = BagPoses.read(self.path, lookup)
        return self._poses


@dataclass(eq=False)
class FolderSource:
    """Images in a folder, posed by poses.csv or UTM coordinates in their names."""

    folder: Path
    poses_csv: Path | None = None
    _items: list[folders.PosedImage] | None = field(default=None, init=False, repr=False)
    _origin: Origin | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return str(self.folder)

    @property
    def geo_origin(self) -> Origin | None:
        geo = [item.geo for item in self._read_items(None) if item.geo is not None]
        return self._origin or (tuple(geo[0]) if geo else None)

    def plan(
        self,
        keyframes: KeyframeConfig,
        counts: Counter,
        origin: Origin | None,
        sample: EvenSample | None = None,
    ) -> list[int]:
        items = self._read_items(origin)
        counts["images"] += len(items)
        for item in items if sample is not None else ():
            sample.offer(folders.read_rgb(item.path) if sample.wants() else None)
        return list(range(len(items)))  # every image of a folder is a keyframe

    def frames(self, keys: Collection[int], counts: Counter | None = None) -> Iterator[Frame]:
        items = self._read_items(None)
        for i in sorted(keys):
            item = items[i]
            image = folders.read_rgb(item.path)
            yield Frame(i, image, item.pose, "map", item.path.name, geo=item.geo, key=i)

    def stored_file(self, key: int) -> tuple[Path, np.ndarray] | None:
        item = self._read_items(None)[key]
        return item.path, item.pose.position

    def _read_items(self, origin: Origin | None) -> list[folders.PosedImage]:
        if self._items is None:
            self._origin = origin
            self._items = self._posed_images(origin)
        return self._items

    def _posed_images(self, origin: Origin | None) -> list[folders.PosedImage]:
        return folders.folder_images(self.folder, self.poses_csv, origin)


@dataclass(eq=False)
class MatSource(FolderSource):
    """One half of a Pittsburgh / Tokyo dbStruct .mat (``folder`` is the image root): its
    database images (``queries`` False: maps, training databases) or its query images."""

    mat: Path = Path()
    queries: bool = False

    @property
    def name(self) -> str:
        return f"{self.mat}:{'queries' if self.queries else 'database'}"

    def _posed_images(self, origin: Origin | None) -> list[folders.PosedImage]:
        if not Path(self.folder).is_dir():
            raise folders.DatasetError(f"image root not found: {self.folder}")
        return folders.mat_images(folders.load_mat(self.mat), self.folder, self.queries)


def plan_keyframes(
    sources: list[Source],
    keyframes: KeyframeConfig,
    counts: Counter,
    origin: Origin | None = None,
    sample: EvenSample | None = None,
) -> list[tuple[int, int]]:
    """(source index, key) of every keyframe of every source, decoding only what ``sample``
    wants. GNSS sources share ``origin``, or else the first GNSS source's first fix."""
    plan: list[tuple[int, int]] = []
    for s, source in enumerate(sources):
        plan += [(s, key) for key in source.plan(keyframes, counts, origin, sample)]
        origin = origin or source.geo_origin
    counts["not a keyframe"] = counts["images"] - counts["no pose within tolerance"] - len(plan)
    return plan


def frames_of(
    sources: list[Source], keys: list[tuple[int, int]], counts: Counter | None = None
) -> Iterator[tuple[int, Frame]]:
    """(plan position, decoded frame) for the given planned keys, source by source."""
    order = {key: n for n, key in enumerate(keys)}
    for s, source in enumerate(sources):
        wanted = [k for (src, k) in keys if src == s]
        if wanted:
            for frame in source.frames(wanted, counts):
                yield order[(s, frame.plan_key)], frame


EVERY_FRAME = KeyframeConfig(min_distance=0.0, min_angle=0.0)  # every posed frame is taken


def every_frame(sources: list[Source], origin: Origin | None = None) -> Iterator[Frame]:
    """Every posed frame of the sources, in order (query sets); GNSS fixes around ``origin``."""
    counts: Counter = Counter()
    plan = plan_keyframes(sources, EVERY_FRAME, counts, origin)
    for _, frame in frames_of(sources, plan, counts):
        yield frame


def build_origin(sources: list[Source]) -> Origin | None:
    """The GNSS origin a planned build's positions are metres around (None without GNSS)."""
    return next((s.geo_origin for s in sources if s.geo_origin), None)
