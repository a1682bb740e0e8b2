"""A map's ``manifest.json`` as a frozen record: what the descriptors are (dim, metric, index, the
model's fingerprint) and everything that changed them or their distances (resize rule, precision,
local features, GNSS origin, the resolved build settings, the camera). Only ``MapDatabase`` makes
new ones; keys a newer package wrote are kept as they are when an older one saves the map."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ros2_netvlad import __version__
from ros2_netvlad.camera import Camera
from ros2_netvlad.errors import InputError
from ros2_netvlad.verification.features import FeatureSettings

FORMAT_VERSION = 1


RADIUS = 25.0  # metres: look-alike pairs further apart are other places (evaluation's threshold)


@dataclass(frozen=True)
class Lookalikes:
    inliers: tuple[int, ...]  # of each measured look-alike pair, ascending
    radius: float = RADIUS
    # the (entry, look-alike) map ids behind each count, in the same order; () in maps measured
    # before they were recorded
    entries: tuple[tuple[int, int], ...] = ()

    def gate(self, quantile: float, margin: int) -> int:
        """The inliers a candidate needs to beat this map's look-alikes."""
        if not self.inliers:
            return 0
        return int(np.ceil(np.quantile(np.array(self.inliers, float), quantile))) + margin

    def aliased(self, floor: int) -> frozenset[int]:
        """Entries in a look-alike pair that reaches ``floor`` inliers: the same scene at two
        places, which no inlier count of a new frame can tell apart."""
        return frozenset(
            i for pair, n in zip(self.entries, self.inliers) if n >= floor for i in pair
        )

    def to_json(self) -> dict:
        return {
            "inliers": list(self.inliers),
            "radius": self.radius,
            "pairs": len(self.inliers),
            "entries": [list(pair) for pair in self.entries],
        }

    @staticmethod
    def from_json(values: dict) -> "Lookalikes":
        inliers = tuple(int(n) for n in values.get("inliers", ()))
        entries = tuple((int(a), int(b)) for a, b in values.get("entries", ()))
        if entries and len(entries) != len(inliers):
            raise MapError(
                f"manifest lookalikes: {len(entries)} entries for {len(inliers)} inlier counts"
            )
        return Lookalikes(inliers, values.get("radius", RADIUS), entries)


class MapError(InputError):
    """A map cannot be created, loaded or extended; the message names the file or the field."""


@dataclass(frozen=True)
class Manifest:
    descriptor_dim: int
    index: str
    count: int = 0
    model_fingerprint: str = ""
    metric: str = "inner_product"
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    package_version: str = __version__
    resize: Mapping[str, Any] | None = None  # resize, max_side, width, height
    precision: str = ""  # fp32, fp16, bf16; "" for maps made before maps said so
    local_features: FeatureSettings | None = None  # every entry carries features made so
    geo_origin: tuple[float, float, float] | None = None  # what GNSS positions are metres around
    build: Mapping[str, Any] | None = None  # build_map's resolved settings, as written
    # the map images' camera (intrinsics, distortion, optical frame on the robot): relative poses
    # need it; maps without one give none (geometry = 0)
    camera: Camera | None = None
    # the map's own look-alikes (maps/lookalikes.py): inliers its wrong pairs reach
    lookalikes: Lookalikes | None = None
    format_version: int = FORMAT_VERSION
    others: Mapping[str, Any] = field(default_factory=dict)  # keys this package does not know

    def to_json(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        others = values.pop("others")
        if self.local_features is not None:
            values["local_features"] = self.local_features.manifest()
        if self.geo_origin is not None:
            values["geo_origin"] = list(self.geo_origin)
        if self.camera is not None:
            values["camera"] = self.camera.to_json()
        if self.lookalikes is not None:
            values["lookalikes"] = self.lookalikes.to_json()
        return {**others, **{k: v for k, v in values.items() if v is not None}}

    @staticmethod
    def from_json(values: Mapping[str, Any], where: Path | str = "manifest.json") -> "Manifest":
        version = values.get("format_version")
        if version != FORMAT_VERSION:
            raise MapError(
                f"{where}: format_version {version} is not supported (this package reads "
                f"{FORMAT_VERSION})"
            )
        for key in ("descriptor_dim", "count", "index"):
            if key not in values:
                raise MapError(f"{where}: missing field {key!r}")
        known = {f.name for f in dataclasses.fields(Manifest)} - {"others"}
        typed = {k: v for k, v in values.items() if k in known}
        if typed.get("local_features"):
            typed["local_features"] = FeatureSettings.from_manifest(typed["local_features"])
        if typed.get("camera"):
            typed["camera"] = Camera.from_json(typed["camera"])
        if typed.get("lookalikes"):
            typed["lookalikes"] = Lookalikes.from_json(typed["lookalikes"])
        if typed.get("geo_origin"):
            typed["geo_origin"] = tuple(float(v) for v in typed["geo_origin"])
        others = {k: v for k, v in values.items() if k not in known}
        return Manifest(**typed, others=others)
